#!/usr/bin/env bash
# #15's memory figure: peak RSS of one `weightmix merge` of 16 recipes (examples/paper-grid's linear
# recipes: 9 λ, 5 layer ranges, without attention, without FFN) over a full-size 2 × 8 GB Qwen3-4B
# pair. 16 × 8 GB of output does not fit this machine's disk, so the inputs are zeros (holes in
# sparse files, real headers) and the outputs go to a zstd-compressed btrfs in a sparse loop file,
# with posix_fallocate made a no-op (no-reserve.c; btrfs stores reserved extents uncompressed).
# Memory does not depend on the values. Needs root (mount) and btrfs-progs; ~20 min on 2 cores.
# Usage: bash scripts/batch-memory/run.sh [WORK]   (default WORK: /work/batch-memory)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/work/batch-memory}"
command -v mkfs.btrfs > /dev/null || { echo "batch-memory: needs mkfs.btrfs (apt-get install btrfs-progs)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "batch-memory: needs root (it mounts a loop file)" >&2; exit 2; }
mkdir -p "$work/mnt"
cleanup() { umount "$work/mnt" 2> /dev/null || true; rm -f "$work/btrfs.img"; }
trap cleanup EXIT
[ -d "$work/pair/thinking" ] || (cd "$root" && npx tsx scripts/batch-memory/zero-pair.ts "$work/pair")
gcc -shared -fPIC -O2 -o "$work/no-reserve.so" "$root/scripts/batch-memory/no-reserve.c"
truncate -s 200G "$work/btrfs.img"
mkfs.btrfs -q -f "$work/btrfs.img" > /dev/null 2>&1
mount -o loop,compress-force=zstd:1 "$work/btrfs.img" "$work/mnt"
recipes=("$root"/examples/paper-grid/{lambda,layers,without}*.yml)
echo "batch-memory: ${#recipes[@]} recipes over $work/pair (2 x 8.04 GB of zeros) -> $work/mnt/grid" >&2
INSTRUCT="$work/pair/instruct" THINKING="$work/pair/thinking" LD_PRELOAD="$work/no-reserve.so" \
  /usr/bin/time -f 'batch-memory: %e s wall, %U s user, %S s sys, peak RSS %M KB' \
  node "$root/bin/weightmix.js" merge "${recipes[@]}" -o "$work/mnt/grid" --quiet
outputs=$(find "$work/mnt/grid" -name '*.safetensors' | wc -l)
bytes=$(du -sb --apparent-size "$work/mnt/grid" | cut -f1)
echo "batch-memory: ${outputs} shard files, $((bytes / 1000000000)) GB written (apparent size)" >&2
