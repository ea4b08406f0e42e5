#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a device machine that has no Node: this machine's node
# binary, node_modules, and the CUDA addon built here (a fallback), into .gpu-carry/ (git-ignored
# through .git/info/exclude). The device tool then runs: bash scripts/gpu-check.sh, carry [".gpu-carry"].
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
rm -rf .gpu-carry && mkdir -p .gpu-carry/bin
NODE=$(readlink -f "$(command -v node)")
cp "$NODE" .gpu-carry/bin/node
tar -C .gpu-carry -cf - bin | xz -T0 -6 > .gpu-carry/node.tar.xz
rm -rf .gpu-carry/bin
# Source maps and docs are not needed to run (type declarations are: tsc and ts-jest read them).
tar --exclude='*.map' --exclude='*.md' -cf - node_modules | xz -T0 -6 > .gpu-carry/node_modules.tar.xz
[ -f build/Release/weightmix.node ] && cp build/Release/weightmix.node .gpu-carry/weightmix.node
du -sh .gpu-carry/*
echo "total: $(du -sm .gpu-carry | cut -f1) MiB (the device tool carries at most 64 MiB with the working tree)"
