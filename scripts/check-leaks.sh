#!/usr/bin/env bash
# Memory errors and leaks of one small merge under valgrind: `weightmix interpolate` on the tiny
# fixture pair, the whole process (node, V8 and the addon). Definite leaks fail the check; each
# definite-leak record is shown, marked when a weightmix.node frame is in its stack.
#   bash scripts/check-leaks.sh        (npm run check:leaks; needs valgrind and a built addon + dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "check-leaks: valgrind is not installed" >&2; exit 2; }
[ -f build/Release/weightmix.node ] || { echo "check-leaks: build the addon first (node scripts/build-native.js)" >&2; exit 2; }
[ -f dist/lib/cli.js ] || { echo "check-leaks: compile first (npx tsc -p tsconfig.json)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/weightmix-leaks-XXXXXX")"
trap 'rm -rf "$work"' EXIT
node -e "require('./dist/lib/fixtures/fixture.js').makeCheckpointPair({ dir: process.argv[1], shape: 'tiny', shards: [2, 1], seed: 1 })" "$work/pair"

log="$work/valgrind.log"
status=0
# --threads 2: the thread pool runs too.
valgrind --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=1 \
  --num-callers=30 --log-file="$log" \
  node bin/weightmix.js interpolate --instruct "$work/pair/instruct" --thinking "$work/pair/thinking" \
  --lambda 0.8 -o "$work/out" --threads 2 -q || status=$?

echo "== valgrind summary"
sed -n '/HEAP SUMMARY/,$p' "$log" | sed 's/^==[0-9]*== //' | grep -vE '^\s*$' | head -40
errors="$(grep -E 'ERROR SUMMARY' "$log" | tail -1 | sed 's/^==[0-9]*== //')"
ours="$(awk '/definitely lost in loss record/{rec=$0; hit=0} /weightmix\.node/{if(rec!=""){hit=1}} /^==[0-9]*== $/{if(rec!="" && hit){print rec}; rec=""}' "$log" | wc -l)"
invalid="$(grep -cE 'Invalid (read|write)|uninitialised|Mismatched free' "$log" || true)"
echo "== $errors; definite-leak records with a weightmix.node frame: $ours; invalid accesses / uninitialised uses reported: $invalid"
if [ -f "$work/out/model.safetensors.index.json" ]; then echo "== the merge completed under valgrind"; else echo "== the merge did NOT complete (status $status)"; fi
if [ "$status" != 0 ]; then
  echo "== definite-leak and error records:"
  grep -E 'definitely lost in loss record|Invalid|uninitialised' -A 14 "$log" | sed 's/^==[0-9]*== //' | head -200
  cp "$log" "${TMPDIR:-/tmp}/weightmix-valgrind.log"
  echo "check-leaks: FAILED (full log: ${TMPDIR:-/tmp}/weightmix-valgrind.log)" >&2
  exit "$status"
fi
echo "check-leaks: no definite leaks, no memory errors"
