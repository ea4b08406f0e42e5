#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a device machine that has no Node: this machine's node
# binary, node_modules, and the CUDA addon built here (a fallback where the device machine cannot
# build it: no cmake), into .gpu-carry/ (git-ignored through .git/info/exclude). The device tool then
# runs: bash scripts/gpu-check.sh, carry [".gpu-carry"].
# Run it after the last change to native/: the addon is rebuilt (incrementally) first, and
# .gpu-carry/native.sha records the sources it was built from, which gpu-check.sh compares.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
# The same hash as gpu-check.sh's nativeHash.
nativeHash() { find native CMakeLists.txt -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name CMakeLists.txt \) | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16; }
node scripts/build-native.js
node -e "process.exit(require('./build/Release/weightmix.node').info().cudaCompiled ? 0 : 1)" ||
  { echo "gpu-pack: build/Release/weightmix.node has no CUDA kernels (is nvcc on PATH?)" >&2; exit 1; }
rm -rf .gpu-carry && mkdir -p .gpu-carry/bin
NODE=$(readlink -f "$(command -v node)")
cp "$NODE" .gpu-carry/bin/node
tar -C .gpu-carry -cf - bin | xz -T0 -6 > .gpu-carry/node.tar.xz
rm -rf .gpu-carry/bin
# Source maps and docs are not needed to run (type declarations are: tsc and ts-jest read them).
tar --exclude='*.map' --exclude='*.md' -cf - node_modules | xz -T0 -6 > .gpu-carry/node_modules.tar.xz
cp build/Release/weightmix.node .gpu-carry/weightmix.node
nativeHash > .gpu-carry/native.sha
du -sh .gpu-carry/*
TREE=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
CARRY=$(du -sb .gpu-carry | cut -f1)
echo "total: $(( (CARRY + TREE) >> 20 )) MiB with the working tree (the device tool carries at most 64 MiB)"
[ $(( CARRY + TREE )) -lt $(( 64 << 20 )) ] || { echo "gpu-pack: too large for the device tool" >&2; exit 1; }
