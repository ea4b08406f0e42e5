#!/usr/bin/env bash
# The kernels' self-test (native/tests/kernels_selftest.cc: every f16/bf16 pattern and every f32 pattern
# converted against c10's algorithms, SIMD == scalar on every op and dtype, known answers), built by
# CMake in build-selftest/ three times: with -ffp-contract=off as the addon is, with =fast, and under
# AddressSanitizer + UndefinedBehaviorSanitizer (a SIMD access past a tensor's end stops it). All must
# pass and print the same digest of all outputs; the 2^32 f32 sweep runs in the =off build. `--quick` skips
# it there too; WEIGHTMIX_SEED replays a seed.
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${WEIGHTMIX_SEED:-$RANDOM}"
# Each build's arguments after the seed: the =off build's as asked, the =fast build's always --quick (see below).
declare -A args=([off]="" [fast]=--quick)
if [[ "${1:-}" == "--quick" ]]; then args[off]=--quick; fi

mkdir -p build-selftest
log=build-selftest/build.log
cmake -S . -B build-selftest -DCMAKE_BUILD_TYPE=Release -DWEIGHTMIX_NO_CUDA=ON > "$log" 2>&1 || { cat "$log"; exit 1; }
cmake --build build-selftest --target kernels_selftest_off kernels_selftest_fast kernels_selftest_asan -- -j2 >> "$log" 2>&1 || { cat "$log"; exit 1; }

# The two builds run side by side (one thread each), then report in turn. The exhaustive f32 sweep (four fifths of a
# run, and outside the digest) runs in the =off build only, whose flags are the addon's; the =fast build is there
# for the digest.
declare -A digest pid
# Reports build $1's run (its exit status $2, its output in build-selftest/run-$1.log, what it was in $3): its output indented
# and its digest kept, or its output and the failure, stopping the script (and any run still going).
report() {
  local out
  out="$(cat "build-selftest/run-$1.log")"
  if [[ $2 -ne 0 ]]; then
    kill "${pid[@]}" 2>/dev/null || true
    echo "$out"
    echo "kernels self-test failed ($3, seed $seed)"
    exit 1
  fi
  echo "$out" | sed 's/^/  /'
  digest[$1]="$(echo "$out" | sed -n 's/^digest //p')"
}
for contract in off fast; do
  # shellcheck disable=SC2086 # args is one word or none
  build-selftest/kernels_selftest_$contract "$seed" ${args[$contract]} >"build-selftest/run-$contract.log" 2>&1 &
  pid[$contract]=$!
done
for contract in off fast; do
  echo "kernels self-test, -ffp-contract=$contract, seed $seed ${args[$contract]}"
  status=0
  wait "${pid[$contract]}" || status=$?
  report "$contract" "$status" "-ffp-contract=$contract"
done
if [[ -z "${digest[off]}" || "${digest[off]}" != "${digest[fast]}" ]]; then
  echo "kernels self-test: digests differ between -ffp-contract=off (${digest[off]}) and =fast (${digest[fast]}): contraction changes bits"
  exit 1
fi

# Under the sanitizers (-O1, about 3 times slower: --quick), after the two others so as not to slow them. Leak checking is
# off: the bounds are the point here (npm run check:leaks covers leaks in the addon).
echo "kernels self-test under AddressSanitizer and UndefinedBehaviorSanitizer, seed $seed --quick"
status=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" build-selftest/kernels_selftest_asan "$seed" --quick >build-selftest/run-asan.log 2>&1 || status=$?
report asan "$status" "under the sanitizers"
if [[ "${digest[asan]}" != "${digest[off]}" ]]; then
  echo "kernels self-test: the sanitizers' build printed digest ${digest[asan]}, the Release build ${digest[off]}: a result depends on the build"
  exit 1
fi
echo "kernels self-test passed: same digest ${digest[off]} with and without contraction, and under the sanitizers"
