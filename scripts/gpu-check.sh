#!/usr/bin/env bash
# One-shot GPU check for a machine with an NVIDIA GPU (target: well under 8 minutes on an H100):
#   0. PTX of the kernels is the same with -fmad=true and -fmad=false (no contraction can change a bit)
#   1. CUDA kernel self-test (native/tests/cuda_selftest.cu) vs the CPU scalar truth, bit for bit
#   2. lerp kernel bandwidth vs a device-to-device cudaMemcpy on the same card (target >= 80%)
#   3. the addon built with CUDA (cmake-js + nvcc; the carried build where that fails), then
#      jest test/device.test.ts test/kernels.test.ts (cuda merges vs CPU, byte for byte)
#   4. end to end: a qwen3-4b --scale 2 fixture merged with --device cpu and --device cuda (time, same bytes)
#   5. the same for ties, dare_ties and task_arithmetic recipes (the sparse and linear GPU kernels)
# Writes summary.md (rewritten after every step, so a killed run still leaves one), gpu-check.log,
# bench.json and jest.log under $OUT (./gpu-check-out when $OUT is unset). Exit status 0 only when
# every step that ran passed.
#
# Where node/node_modules are missing (the device machines have none), it unpacks .gpu-carry/
# (made here by scripts/gpu-pack.sh; pass `carry: [".gpu-carry"]` to the device tool).
#
# Dry run on a machine without a GPU: WEIGHTMIX_GPU_CHECK_DRY=1 bash scripts/gpu-check.sh
#   runs every step that needs no GPU (PTX check, every nvcc build, the addon build into a scratch
#   folder, tsc, jest with the CUDA cases skipped, the fixture and the CPU merge, and checks that
#   --device cuda fails with one line) and prints why each GPU step is skipped. It leaves build/ alone.
# Other knobs: WEIGHTMIX_GPU_CHECK_BUDGET (seconds for the whole script, default 450),
#   WEIGHTMIX_GPU_CHECK_NO_BUILD=1 (use the carried addon, as where there is no cmake),
#   WEIGHTMIX_GPU_CHECK_FIXTURE (make-fixture flags, default "--shape qwen3-4b --scale 2"; a dry run
#   defaults to "--shape qwen3-4b --scale 8 --layers 4" to stay light on a shared machine).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=${WEIGHTMIX_GPU_CHECK_DRY:-0}
[ "$DRY" = 0 ] && DRY=""
BUDGET=${WEIGHTMIX_GPU_CHECK_BUDGET:-450}
OUTDIR=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUTDIR"
# ./gpu-check-out stays out of `git status` (.gitignore is not this script's to edit).
if [ -z "${OUT:-}" ] && [ -d .git/info ]; then grep -qx '/gpu-check-out/' .git/info/exclude 2>/dev/null || echo '/gpu-check-out/' >> .git/info/exclude; fi
LOG=$OUTDIR/gpu-check.log
SUMMARY=$OUTDIR/summary.md
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=${!:-}
START=$(date +%s)
WORK=$(mktemp -d /tmp/weightmix-gpu-check.XXXXXX)
declare -a ROWS=()
FAILED=0
elapsed() { echo $(( $(date +%s) - START )); }
writeSummary() {
  {
    echo "# weightmix GPU check${DRY:+ (DRY RUN: no GPU steps)} ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(elapsed) s of a $BUDGET s budget)"
    echo
    echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 | grep . || echo none)"
    echo "CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    echo
    echo "| step | result | detail |"
    echo "|---|---|---|"
    [ ${#ROWS[@]} -gt 0 ] && printf '%s\n' "${ROWS[@]}"
    echo
    echo "Result: $([ "$FAILED" = 0 ] && echo "no failures" || echo "$FAILED step(s) FAILED")"
  } > "$SUMMARY.tmp" && mv -f "$SUMMARY.tmp" "$SUMMARY"
}
# row STEP RESULT DETAIL: a summary line (a RESULT starting with FAIL or BUILD FAIL counts as a failure).
row() {
  local detail=${3//|/\\|}
  detail=$(printf '%s' "$detail" | tr '\n' ' ' | cut -c1-600)
  ROWS+=("| $1 | $2 | $detail |")
  case "$2" in FAIL* | "BUILD FAIL"* | *DIFFER*) FAILED=$((FAILED + 1)) ;; esac
  echo "== [$(elapsed) s] $1: $2 — $detail"
  writeSummary
}
skip() { row "$1" SKIPPED "$2"; }
finish() {
  local rc=$?
  trap - EXIT
  writeSummary
  echo
  cat "$SUMMARY"
  [ -n "${BGPIDS:-}" ] && kill $BGPIDS 2>/dev/null
  rm -rf "$WORK"
  exec 1>&- 2>&-
  [ -n "$TEE_PID" ] && wait "$TEE_PID" 2>/dev/null  # the log is complete before the device tool collects $OUT
  [ "$FAILED" = 0 ] && exit "$rc" || exit 1
}
trap finish EXIT
trap 'row "script" "FAIL (terminated)" "killed by a signal after $(elapsed) s"; exit 143' TERM INT
# Seconds a step may take: its own cap, less what the budget has left (minus 10 s for the summary).
allow() {
  local left=$(( BUDGET - $(elapsed) - 10 ))
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
# limited SECONDS CMD...: runs CMD under timeout; 124 when the budget is already spent.
limited() {
  local s
  s=$(allow "$1"); shift
  [ "$s" -lt 5 ] && { echo "budget spent, not run: $*"; return 124; }
  timeout -k 5 "$s" "$@"
}

# ---- toolchain ----------------------------------------------------------------------------------
# untar FILE.tar.xz [tar options]: with xz, else through Python's lzma (a machine may lack xz).
untar() {
  local f=$1; shift
  if command -v xz >/dev/null; then tar -xJf "$f" "$@"
  else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$f" | tar -xf - "$@"; fi
}
if ! command -v node >/dev/null && [ -f .gpu-carry/node.tar.xz ]; then
  mkdir -p "$WORK/node" && untar .gpu-carry/node.tar.xz -C "$WORK/node" && export PATH=$WORK/node/bin:$PATH
fi
if [ ! -d node_modules ] && [ -f .gpu-carry/node_modules.tar.xz ]; then untar .gpu-carry/node_modules.tar.xz; fi
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
# CMake's CUDA detection and cmake-js find nvcc through these even where it is not on PATH.
export PATH=$PATH:$(dirname "$NVCC") CUDACXX=${CUDACXX:-$NVCC}
HAVE_GPU=""
if nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.' | xargs)
CC=${CC:-90}
ARCH=sm_$CC
NVFLAGS=(-std=c++17 -arch=$ARCH -O3 -fmad=false -Xcompiler -ffp-contract=off -Inative)
JOBS=$(nproc)
# What the carried addon was built from (scripts/gpu-pack.sh writes the same hash).
nativeHash() { find native CMakeLists.txt -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name CMakeLists.txt \) | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16; }
row toolchain "$(command -v node >/dev/null && node --version || echo 'no node')" \
  "nvcc $("$NVCC" --version 2>/dev/null | grep -o 'release [0-9.]*' || echo missing), arch $ARCH, $(command -v cmake >/dev/null && cmake --version | head -1 || echo 'no cmake'), $JOBS cores, native sources $(nativeHash)${DRY:+, dry run}"
if [ -n "$DRY" ]; then
  echo "dry run: GPU steps are skipped${HAVE_GPU:+ (a GPU is present but DRY is set)}"
elif [ -z "$HAVE_GPU" ]; then
  row "GPU" "FAIL" "nvidia-smi lists no GPU: the GPU steps will fail (use WEIGHTMIX_GPU_CHECK_DRY=1 on machines without one)"
fi

# ---- builds, all at once (they need no GPU) -------------------------------------------------------------
# Every CPU kernel file: the self-test compares against the scalar truth, and dispatch.cc links them all.
KSRC=(native/kernels/cuda/*.cu native/kernels/*.cc)
BGPIDS=""
limited 240 "$NVCC" "${NVFLAGS[@]}" native/tests/cuda_selftest.cu "${KSRC[@]}" -o "$WORK/cuda_selftest" >"$WORK/selftest-build.log" 2>&1 &
SELFTEST_PID=$!
limited 240 "$NVCC" "${NVFLAGS[@]}" native/tests/cuda_bench.cu native/kernels/cuda/cuda.cu -o "$WORK/cuda_bench" >"$WORK/bench-build.log" 2>&1 &
BENCH_PID=$!
(
  for f in cuda sparse; do
    for m in true false; do "$NVCC" -std=c++17 -arch=$ARCH -O3 -fmad=$m -Inative --ptx native/kernels/cuda/$f.cu -o "$WORK/$f-fmad-$m.ptx" || exit 1; done
    cmp -s "$WORK/$f-fmad-true.ptx" "$WORK/$f-fmad-false.ptx" || { echo "$f.cu: the PTX differs with -fmad=true"; exit 2; }
    echo "$f.cu: $(grep -c 'fma\.rn\.f32' "$WORK/$f-fmad-false.ptx") fma.rn.f32 (the formulas' own), $(grep -cE '(add|sub|mul)\.f32' "$WORK/$f-fmad-false.ptx") f32 add/sub/mul without .rn"
  done
) >"$WORK/ptx.log" 2>&1 &
PTX_PID=$!
BGPIDS="$SELFTEST_PID $BENCH_PID $PTX_PID"

# The addon: built here when CMake is present (into build/, or a scratch folder on a dry run), else
# the one carried in .gpu-carry/ (built on the dev machine by scripts/gpu-pack.sh).
if [ -n "$DRY" ]; then BUILD=$WORK/build; else BUILD=$ROOT/build; fi
ADDON=$BUILD/Release/weightmix.node
ADDON_OK=""
cudaCompiled() { node -e "process.exit(require(process.argv[1]).info().cudaCompiled ? 0 : 1)" "$1" 2>/dev/null; }
if ! command -v node >/dev/null; then
  skip "addon build" "no node here: run scripts/gpu-pack.sh on the dev machine and carry .gpu-carry"
elif [ ! -d node_modules/cmake-js ]; then
  skip "addon build" "no node_modules/cmake-js: run scripts/gpu-pack.sh on the dev machine and carry .gpu-carry"
elif ! command -v cmake >/dev/null; then
  skip "addon build" "no cmake on this machine"
elif [ -n "${WEIGHTMIX_GPU_CHECK_NO_BUILD:-}" ]; then
  skip "addon build" "WEIGHTMIX_GPU_CHECK_NO_BUILD is set"
else
  T0=$(elapsed)
  if limited 300 node node_modules/cmake-js/bin/cmake-js compile --out "$BUILD" --parallel "$JOBS" --CDWEIGHTMIX_CUDA_ARCHITECTURES="$CC-real" >"$WORK/addon-build.log" 2>&1 && cudaCompiled "$ADDON"; then
    row "addon build (cmake-js + nvcc, $CC-real)" PASS "$(( $(elapsed) - T0 )) s"
    ADDON_OK=1
  else
    row "addon build (cmake-js + nvcc)" "FAIL" "$(grep -m3 -iE 'error|budget' "$WORK/addon-build.log")"
    tail -30 "$WORK/addon-build.log"
    cp "$WORK/addon-build.log" "$OUTDIR/addon-build.log"
  fi
fi
if [ -z "$ADDON_OK" ] && command -v node >/dev/null && [ -f .gpu-carry/weightmix.node ]; then
  CARRIED=$(cat .gpu-carry/native.sha 2>/dev/null || echo unknown)
  if [ -z "$DRY" ]; then mkdir -p build/Release && cp -f .gpu-carry/weightmix.node build/Release/weightmix.node; ADDON=$ROOT/build/Release/weightmix.node
  else ADDON=$ROOT/.gpu-carry/weightmix.node; fi
  if cudaCompiled "$ADDON"; then
    ADDON_OK=1
    row "addon" "using the carried build" "built from native sources $CARRIED; these are $(nativeHash)$([ "$CARRIED" = "$(nativeHash)" ] || echo ' — STALE: rerun scripts/gpu-pack.sh')"
  fi
fi
[ -n "$ADDON_OK" ] && export WEIGHTMIX_ADDON=$ADDON
# The tests' CLI helper insists on build/Release/weightmix.node (it then runs $WEIGHTMIX_ADDON).
if [ -n "$ADDON_OK" ] && [ ! -f build/Release/weightmix.node ]; then mkdir -p build/Release && cp "$ADDON" build/Release/weightmix.node; fi
if [ -n "$ADDON_OK" ]; then
  INFO=$(node -e "console.log(JSON.stringify(require(process.argv[1]).info()))" "$ADDON" 2>&1)
  if [ -z "$DRY" ] && ! echo "$INFO" | grep -q '"cudaDevices"'; then row "addon info" "FAIL (no usable GPU)" "$INFO"
  else row "addon info" "" "$INFO"; fi
fi

# The compiled CLI (dist/ is git-ignored, so the device machine builds it with the carried tsc).
DIST_OK=""
if command -v node >/dev/null && [ -f node_modules/typescript/bin/tsc ]; then
  if [ ! -f dist/lib/cli.js ] || [ -n "$(find lib -name '*.ts' -newer dist/lib/cli.js | head -1)" ]; then
    limited 120 node node_modules/typescript/bin/tsc -p tsconfig.json >"$WORK/tsc.log" 2>&1 || echo "tsc reported errors (it emits anyway): $(grep -c 'error TS' "$WORK/tsc.log")"
  fi
  [ -f dist/lib/cli.js ] && DIST_OK=1 || row "tsc (dist/)" FAIL "$(head -3 "$WORK/tsc.log")"
fi

# ---- 0. PTX: -fmad cannot change a bit -----------------------------------------------------------------------
if wait $PTX_PID; then row "PTX identical with -fmad=true/false" PASS "$(cat "$WORK/ptx.log")"
else row "PTX identical with -fmad=true/false" FAIL "$(cat "$WORK/ptx.log")"; fi

# ---- 1. kernel self-test ---------------------------------------------------------------------------------
if wait $SELFTEST_PID; then
  if [ -n "$DRY" ]; then skip "kernel self-test" "dry run: built ($(du -h "$WORK/cuda_selftest" | cut -f1)), not run (it needs a GPU)"
  elif limited 120 "$WORK/cuda_selftest" 1 >"$WORK/selftest.log" 2>&1; then row "kernel self-test" PASS "$(tail -2 "$WORK/selftest.log")"
  else row "kernel self-test" FAIL "$(grep -v '^seed' "$WORK/selftest.log" | head -6)"; fi
  cat "$WORK/selftest.log" 2>/dev/null
  cp "$WORK/selftest.log" "$OUTDIR/selftest.log" 2>/dev/null
else
  row "kernel self-test" "BUILD FAIL" "$(grep -m3 -iE 'error|budget' "$WORK/selftest-build.log")"; cat "$WORK/selftest-build.log"
fi

# ---- 2. bandwidth ---------------------------------------------------------------------------------
if ! wait $BENCH_PID; then
  row "lerp bandwidth" "BUILD FAIL" "$(grep -m3 -iE 'error|budget' "$WORK/bench-build.log")"; cat "$WORK/bench-build.log"
elif [ -n "$DRY" ]; then
  skip "lerp bandwidth vs D2D memcpy" "dry run: built, not run (it needs a GPU)"
elif limited 120 "$WORK/cuda_bench" 1024 >"$OUTDIR/bench.json" 2>"$WORK/bench.err"; then
  RATIO=$(grep -o '"lerpRatio":[0-9.]*' "$OUTDIR/bench.json" | cut -d: -f2)
  VERDICT=$(awk -v r="${RATIO:-0}" 'BEGIN{print (r>=0.8)?"PASS":"BELOW TARGET"}')
  row "lerp bandwidth vs D2D memcpy (target >= 0.80)" "$VERDICT (${RATIO:-?})" "$(cat "$OUTDIR/bench.json")"
else
  row "lerp bandwidth" FAIL "$(cat "$WORK/bench.err")"
fi
BGPIDS=""

if ! command -v node >/dev/null || [ -z "$ADDON_OK" ] || [ -z "$DIST_OK" ]; then
  row "jest, end to end" "FAIL (not run)" "needs node ($(command -v node || echo missing)), a CUDA addon (${ADDON_OK:-none}) and dist/ (${DIST_OK:-missing})"
  exit 1
fi

# ---- 3. device tests ------------------------------------------------------------------------------------
JEST=(node node_modules/jest/bin/jest.js --ci test/device.test.ts test/kernels.test.ts)
if limited 240 "${JEST[@]}" >"$WORK/jest.log" 2>&1; then
  row "jest device + kernels" PASS "$(grep -E '^Tests:' "$WORK/jest.log")$(grep -q 'CUDA cases skipped' "$WORK/jest.log" && echo " — CUDA cases SKIPPED: $(grep -m1 -o 'CUDA cases skipped.*' "$WORK/jest.log")")"
else
  row "jest device + kernels" FAIL "$(grep -E '^Tests:|✕|budget spent' "$WORK/jest.log" | head -8)"
fi
cp "$WORK/jest.log" "$OUTDIR/jest.log"
if [ -z "$DRY" ] && grep -q 'CUDA cases skipped' "$WORK/jest.log"; then row "jest: CUDA cases" "FAIL (skipped)" "$(grep -m1 -o 'CUDA cases skipped.*' "$WORK/jest.log")"; fi

# ---- 4. end to end -----------------------------------------------------------------------------------
FIX=$WORK/fixture
if [ -n "$DRY" ]; then FIXFLAGS=${WEIGHTMIX_GPU_CHECK_FIXTURE:---shape qwen3-4b --scale 8 --layers 4}
else FIXFLAGS=${WEIGHTMIX_GPU_CHECK_FIXTURE:---shape qwen3-4b --scale 2}; fi
T0=$(elapsed)
# shellcheck disable=SC2086
if limited 150 node node_modules/tsx/dist/cli.mjs scripts/make-fixture.ts $FIXFLAGS --out "$FIX" --quiet >"$WORK/fixture.log" 2>&1; then
  row "fixture ($FIXFLAGS)" PASS "$(du -sh "$FIX" | cut -f1) in $(( $(elapsed) - T0 )) s"
  # merge OUT DEVICE: prints the `done` JSON line; the status is the CLI's.
  merge() { limited 90 node bin/weightmix.js interpolate --instruct "$FIX/instruct" --thinking "$FIX/thinking" --lambda 0.6 -o "$1" --device "$2" --json --force >"$WORK/merge-$2.out" 2>"$WORK/merge-$2.err"; }
  secs() { grep '"event":"done"' "$WORK/merge-$1.out" | grep -o '"seconds":[0-9.]*' | cut -d: -f2; }
  CPU_OK=1
  for rep in 1 2; do merge "$WORK/out-cpu" cpu || CPU_OK=""; done
  if [ -z "$CPU_OK" ]; then row "end to end: --device cpu" FAIL "$(tail -2 "$WORK/merge-cpu.err")"; fi
  if [ -n "$DRY" ]; then
    # No GPU: --device cuda must fail with exactly one line naming the reason, and leave no output.
    merge "$WORK/out-cuda" cuda
    RC=$?
    LINES=$(grep -c . "$WORK/merge-cuda.err")
    if [ "$RC" = 1 ] && [ "$LINES" = 1 ] && [ ! -e "$WORK/out-cuda" ]; then row "--device cuda without a GPU" PASS "exit 1, one line: $(cat "$WORK/merge-cuda.err")"
    else row "--device cuda without a GPU" FAIL "exit $RC, $LINES stderr lines: $(head -3 "$WORK/merge-cuda.err")"; fi
    [ -n "$CPU_OK" ] && skip "end to end cpu vs cuda" "dry run: cpu merge $(secs cpu) s, $(du -sh "$WORK/out-cpu" | cut -f1); no GPU for the cuda one"
  else
    CUDA_OK=1
    for rep in 1 2; do merge "$WORK/out-cuda" cuda || CUDA_OK=""; done
    if [ -z "$CUDA_OK" ]; then
      row "end to end: --device cuda" FAIL "$(tail -2 "$WORK/merge-cuda.err")"
    elif [ -n "$CPU_OK" ]; then
      DIFF=0
      for f in "$WORK"/out-cpu/*.safetensors; do cmp -s "$f" "$WORK/out-cuda/$(basename "$f")" || DIFF=$((DIFF + 1)); done
      row "end to end ($FIXFLAGS, λ 0.6, second run of each)" "$([ "$DIFF" = 0 ] && echo 'PASS (same bytes)' || echo "$DIFF shards DIFFER")" \
        "cpu $(secs cpu) s, cuda $(secs cuda) s; $(du -sh "$WORK/out-cpu" | cut -f1) written"
    fi
  fi
  # ---- 5. recipes whose kernels have a GPU form: cpu against cuda on the same fixture -------------------
  # recipe NAME METHOD PARAMS: a mergekit YAML of the fixture's thinking model over its instruct base.
  recipe() { printf 'merge_method: %s\nbase_model: %s\nrandom_seed: 7\nmodels:\n  - model: %s\n    parameters: {%s}\n' "$2" "$FIX/instruct" "$FIX/thinking" "$3" >"$WORK/$1.yaml"; }
  recipe ties ties 'weight: 0.8, density: 0.5'
  recipe dare_ties dare_ties 'weight: 0.8, density: 0.5'
  recipe task_arithmetic task_arithmetic 'weight: 0.8'
  # mergeRecipe NAME DEVICE: the second of two runs is timed (the first warms the inputs and the device).
  mergeRecipe() {
    local rep
    for rep in 1 2; do
      limited 120 node bin/weightmix.js merge "$WORK/$1.yaml" -o "$WORK/$1-$2" --device "$2" --json --force >"$WORK/merge-$1-$2.out" 2>"$WORK/merge-$1-$2.err" || return 1
    done
  }
  for name in ties dare_ties task_arithmetic; do
    if ! mergeRecipe "$name" cpu; then row "recipe $name: --device cpu" FAIL "$(tail -2 "$WORK/merge-$name-cpu.err")"; continue; fi
    if [ -n "$DRY" ]; then skip "recipe $name cpu vs cuda" "dry run: cpu $(secs "$name-cpu") s; no GPU for the cuda one"; continue; fi
    if ! mergeRecipe "$name" cuda; then row "recipe $name: --device cuda" FAIL "$(tail -2 "$WORK/merge-$name-cuda.err")"; continue; fi
    DIFF=0
    for f in "$WORK/$name-cpu"/*.safetensors; do cmp -s "$f" "$WORK/$name-cuda/$(basename "$f")" || DIFF=$((DIFF + 1)); done
    row "recipe $name (second run of each)" "$([ "$DIFF" = 0 ] && echo 'PASS (same bytes)' || echo "$DIFF shards DIFFER")" \
      "cpu $(secs "$name-cpu") s, cuda $(secs "$name-cuda") s"
    rm -rf "$WORK/$name-cpu" "$WORK/$name-cuda"
  done
else
  row "end to end" FAIL "fixture: $(tail -2 "$WORK/fixture.log")"
fi
