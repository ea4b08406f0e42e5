#!/usr/bin/env bash
# One-shot GPU check for a machine with an NVIDIA GPU (target: under 8 minutes on an H100):
#   1. CUDA kernel self-test (native/tests/cuda_selftest.cu) vs the CPU scalar truth, bit for bit
#   2. lerp kernel bandwidth vs a device-to-device cudaMemcpy on the same card (target >= 80%)
#   3. the addon built with CUDA, then `npx jest test/device test/kernels` (cuda merges vs CPU, byte for byte)
#   4. end to end: a qwen3-4b --scale 2 fixture merged with --device cuda and --device cpu (time, same bytes)
# Writes summary.md, gpu-check.log and bench.json under $OUT (./gpu-check-out when $OUT is unset).
# Where node/node_modules are missing (the device machines have none), it unpacks .gpu-carry/
# (made here by scripts/gpu-pack.sh; pass `carry: [".gpu-carry"]` to the device tool).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTDIR=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-check.log
SUMMARY=$OUTDIR/summary.md
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
WORK=$(mktemp -d /tmp/weightmix-gpu-check.XXXXXX)
declare -a ROWS=()
row() { ROWS+=("| $1 | $2 | $3 |"); echo "== $1: $2 — $3"; }
elapsed() { echo $(( $(date +%s) - START ))s; }
finish() {
  {
    echo "# weightmix GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed))"
    echo
    echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo none)"
    echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo
    echo "| step | result | detail |"
    echo "|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
  } > "$SUMMARY"
  cat "$SUMMARY"
  rm -rf "$WORK"
}
trap finish EXIT

# ---- toolchain ----------------------------------------------------------------------------------
if ! command -v node >/dev/null && [ -f .gpu-carry/node.tar.xz ]; then
  mkdir -p /tmp/weightmix-node && tar -xJf .gpu-carry/node.tar.xz -C /tmp/weightmix-node && export PATH=/tmp/weightmix-node/bin:$PATH
fi
if [ ! -d node_modules ] && [ -f .gpu-carry/node_modules.tar.xz ]; then tar -xJf .gpu-carry/node_modules.tar.xz; fi
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.' | xargs)
ARCH=sm_${CC:-90}
row toolchain "$(command -v node >/dev/null && node --version || echo 'no node')" "nvcc $($NVCC --version 2>/dev/null | grep -o 'release [0-9.]*'), arch $ARCH, $(command -v cmake >/dev/null && cmake --version | head -1 || echo 'no cmake')"

# ---- 1. kernel self-test -------------------------------------------------------------------------
KSRC="native/kernels/cuda/cuda.cu native/kernels/cpu_scalar.cc native/kernels/cpu_avx2.cc native/kernels/dispatch.cc"
if $NVCC -std=c++17 -arch=$ARCH -O3 -Inative native/tests/cuda_selftest.cu $KSRC -o $WORK/cuda_selftest >$WORK/selftest-build.log 2>&1; then
  if timeout 120 $WORK/cuda_selftest 1 >$WORK/selftest.log 2>&1; then row "kernel self-test" PASS "$(tail -2 $WORK/selftest.log | tr '\n' ' ')"
  else row "kernel self-test" FAIL "$(head -5 $WORK/selftest.log | tr '\n' ' ')"; fi
  cat $WORK/selftest.log
else
  row "kernel self-test" "BUILD FAIL" "$(grep -m3 error $WORK/selftest-build.log | tr '\n' ' ')"; cat $WORK/selftest-build.log
fi

# ---- 2. bandwidth ---------------------------------------------------------------------------------
if $NVCC -std=c++17 -arch=$ARCH -O3 -fmad=false -Inative native/tests/cuda_bench.cu native/kernels/cuda/cuda.cu -o $WORK/cuda_bench >$WORK/bench-build.log 2>&1 &&
   timeout 120 $WORK/cuda_bench 1024 >$OUTDIR/bench.json 2>$WORK/bench.err; then
  RATIO=$(node -e "const j=require('$OUTDIR/bench.json');console.log(j.lerpRatio)" 2>/dev/null || grep -o '"lerpRatio":[0-9.]*' $OUTDIR/bench.json | cut -d: -f2)
  VERDICT=$(awk -v r="$RATIO" 'BEGIN{print (r>=0.8)?"PASS":"BELOW TARGET"}')
  row "lerp bandwidth vs D2D memcpy (target >= 0.80)" "$VERDICT ($RATIO)" "$(cat $OUTDIR/bench.json)"
else
  row "lerp bandwidth" FAIL "$(cat $WORK/bench-build.log $WORK/bench.err 2>/dev/null | grep -m3 -i error | tr '\n' ' ')"
fi

if ! command -v node >/dev/null; then row "addon, jest, end to end" SKIPPED "no node here: run scripts/gpu-pack.sh on the dev machine and carry .gpu-carry"; exit 1; fi

# ---- 3. addon + device tests ------------------------------------------------------------------
if node scripts/build-native.js --CDWEIGHTMIX_CUDA_ARCHITECTURES=${CC:-90}-real >$WORK/addon-build.log 2>&1 &&
   node -e "process.exit(require('./build/Release/weightmix.node').info().cudaCompiled ? 0 : 1)"; then
  row "addon build (cmake-js + nvcc)" PASS "$(grep -o 'real.*' $WORK/addon-build.log | head -1)"
elif [ -f .gpu-carry/weightmix.node ]; then
  mkdir -p build/Release && cp .gpu-carry/weightmix.node build/Release/weightmix.node
  row "addon build (cmake-js + nvcc)" "FAIL, using the carried build" "$(grep -m3 -i error $WORK/addon-build.log | tr '\n' ' ')"
else
  row "addon build" FAIL "$(grep -m3 -i error $WORK/addon-build.log | tr '\n' ' ')"; cat $WORK/addon-build.log; exit 1
fi
row "info" "" "$(node -e "console.log(JSON.stringify(require('./build/Release/weightmix.node').info()))")"
[ -d dist/lib ] || npx tsc -p tsconfig.json >/dev/null 2>&1
if timeout 240 npx jest test/device test/kernels >$WORK/jest.log 2>&1; then row "jest test/device test/kernels" PASS "$(grep -E '^Tests:' $WORK/jest.log)"
else row "jest test/device test/kernels" FAIL "$(grep -E '^Tests:|✕' $WORK/jest.log | head -8 | tr '\n' ' ')"; fi
cp $WORK/jest.log $OUTDIR/jest.log

# ---- 4. end to end -----------------------------------------------------------------------------------
FIX=$WORK/fixture
if timeout 150 npx tsx scripts/make-fixture.ts --shape qwen3-4b --scale 2 --out $FIX >$WORK/fixture.log 2>&1; then
  merge() { node bin/weightmix.js interpolate --instruct $FIX/instruct --thinking $FIX/thinking --lambda 0.6 -o $1 --device $2 --json --force | tail -1; }
  for rep in 1 2; do
    CPU=$(merge $WORK/out-cpu cpu); GPU=$(merge $WORK/out-cuda cuda)
  done
  SAME=$(for f in $WORK/out-cpu/*.safetensors; do cmp -s $f $WORK/out-cuda/$(basename $f) || echo differ; done | grep -c differ)
  secs() { echo "$1" | grep -o '"seconds":[0-9.]*' | cut -d: -f2; }
  row "end to end qwen3-4b/2, λ 0.6 (second run of each)" "$([ "$SAME" = 0 ] && echo 'same bytes' || echo "$SAME shards DIFFER")" \
    "cpu $(secs "$CPU") s, cuda $(secs "$GPU") s; $(du -sh $WORK/out-cpu | cut -f1) written"
  echo "cpu: $CPU"; echo "cuda: $GPU"
else
  row "end to end" FAIL "fixture: $(tail -2 $WORK/fixture.log | tr '\n' ' ')"
fi
