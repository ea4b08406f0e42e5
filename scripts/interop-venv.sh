#!/usr/bin/env bash
# The optional Python venv of the interop tests (scripts/interop/README.md): torch, safetensors and transformers from pip's
# configured indexes, without the network, in /tmp/venv-interop, where test/interop.test.ts looks (elsewhere, set
# WEIGHTMIX_PYTHON to its python). Never fails the caller: where pip cannot install them it says why, and the interop tests
# then skip each case with its reason.
set -u
VENV=${WEIGHTMIX_INTEROP_VENV:-/tmp/venv-interop}
ready() { "$VENV/bin/python" -c 'import torch, safetensors, transformers' >/dev/null 2>&1; }
if ready; then
  echo "interop venv: $VENV is ready"
  exit 0
fi
# A folder that was there before (a venv with torch but not transformers, anything else) is never removed here.
created=0
[ -e "$VENV" ] || created=1
if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
  echo "interop venv: skipped: python3 -m venv failed (no venv module); the interop tests skip with their reason"
  exit 0
fi
# No retries: an index that is not there answers at once, and the local ones need none.
if ! "$VENV/bin/pip" install -q --retries 0 --timeout 10 torch safetensors transformers >"$VENV.log" 2>&1 || ! ready; then
  echo "interop venv: skipped: pip could not install torch, safetensors and transformers (no local package index? $VENV.log); the interop tests skip with their reason"
  [ "$created" = 1 ] && rm -rf "$VENV"
  exit 0
fi
echo "interop venv: $VENV ready: $("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
