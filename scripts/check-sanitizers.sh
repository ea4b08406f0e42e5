#!/usr/bin/env bash
# The native addon under AddressSanitizer + UndefinedBehaviorSanitizer: rebuild it with
# WEIGHTMIX_SANITIZE=address,undefined into the normal build folder, run every test that reaches the
# engine (kernels, merges, the reliability suite with its CLI runs, verify) with the ASan runtime
# preloaded into node, fail on any sanitizer report, and rebuild the normal addon whatever happens.
#   bash scripts/check-sanitizers.sh [jest args…]      (npm run check:sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."

reports="$(mktemp -d "${TMPDIR:-/tmp}/weightmix-sanitizers-XXXXXX")"

# Builds the addon with WEIGHTMIX_SANITIZE=$1 (empty: the normal build). `cmake-js compile` on a
# configured build folder only runs `cmake --build`, ignoring new -D values, so an existing folder is
# reconfigured with cmake itself (its cache keeps cmake-js's Node paths).
build_addon() {
  if [ -f build/CMakeCache.txt ]; then
    cmake -S . -B build "-DWEIGHTMIX_SANITIZE=$1" && cmake --build build --config Release
  else
    WEIGHTMIX_SANITIZE="$1" node scripts/build-native.js
  fi
}

restore() {
  # The sanitizer runtime preloaded for the tests must not follow the compiler or ldd.
  unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
  echo "== rebuilding the normal addon"
  if build_addon "" >"$reports/rebuild.log" 2>&1 && ! ldd build/Release/weightmix.node | grep libasan >/dev/null; then
    echo "== normal addon restored"
    # Keep the folder only when it holds sanitizer reports.
    compgen -G "$reports/*san*" >/dev/null || rm -rf "$reports"
  else
    cat "$reports/rebuild.log"
    echo "check-sanitizers: the normal rebuild FAILED; run: cmake -S . -B build -DWEIGHTMIX_SANITIZE= && cmake --build build" >&2
  fi
}
trap restore EXIT

echo "== building the addon with -fsanitize=address,undefined"
build_addon address,undefined >"$reports/build.log" 2>&1 || { cat "$reports/build.log"; exit 1; }
if ! ldd build/Release/weightmix.node | grep libasan >/dev/null; then
  echo "check-sanitizers: the addon is not linked against libasan" >&2
  exit 1
fi

libasan="$(gcc -print-file-name=libasan.so)"
[ -f "$libasan" ] || { echo "check-sanitizers: no libasan.so ($libasan)" >&2; exit 1; }
# node itself is not instrumented and frees memory at exit in its own time: leaks are valgrind's job
# (check-leaks.sh). Reports go to files, so that output captured by tests cannot hide them.
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$reports/asan:detect_odr_violation=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"

# Every test file that reaches the native engine: through the API, the CLI, or the kernels.
mapfile -t tests < <(grep -rlE "lib/(interpolate|native|engine/native|merge|sweep|verify|analysis/diff)|helpers/cli|scripts/fuzz|runKernelForTest|kernel" test --include='*.test.ts' | sort)
echo "== ${#tests[@]} test files under the sanitizers"
status=0
npx jest --runInBand "${tests[@]}" "$@" || status=$?

found=0
for f in "$reports"/asan* "$reports"/ubsan*; do
  [ -e "$f" ] || continue
  found=1
  echo "== sanitizer report $f"
  cat "$f"
done
if [ "$found" = 1 ]; then
  echo "check-sanitizers: FAILED (sanitizer reports above; kept in $reports)" >&2
  exit 1
fi
if [ "$status" != 0 ]; then
  echo "check-sanitizers: FAILED (tests failed under the sanitizers, status $status)" >&2
  exit "$status"
fi
echo "check-sanitizers: no AddressSanitizer or UndefinedBehaviorSanitizer reports in ${#tests[@]} test files"
