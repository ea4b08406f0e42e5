#!/usr/bin/env python3
"""The PyTorch peer: the paper's released interpolation algorithm, written from its description.

For each output shard (the Instruct model's sharding), load every tensor of that shard from both
models, compute merged = instruct + λ·(thinking − instruct) and save the shard with
safetensors.torch.save_file. Variants:
  bf16  -- the paper's script: bf16 tensor arithmetic (each op rounds to bf16)
  lerp  -- torch.lerp in f32, rounded once to bf16 (what `weightmix --numerics exact` computes)

Every written file (each shard, and the index) is then fsynced (open, fsync, close), so the time covers the data
reaching the disk, as weightmix's does (it fdatasyncs every shard). The arithmetic above is unchanged by this.

Prints one JSON line: {"variant", "seconds" (after the fsyncs), "seconds_unsynced" (before them), "sync_seconds",
"bytes", "torch", "threads"}.
usage: peer_torch.py --instruct DIR --thinking DIR --lambda 0.8 -o OUT [--variant bf16|lerp] [--threads N]
"""
import argparse
import json
import os
import time

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def shard_map(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return json.load(f)["weight_map"]
    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
        return {k: "model.safetensors" for k in f.keys()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--instruct", required=True)
    p.add_argument("--thinking", required=True)
    p.add_argument("--lambda", dest="lam", type=float, required=True)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--variant", choices=["bf16", "lerp"], default="bf16")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    started = time.perf_counter()
    os.makedirs(a.output, exist_ok=True)
    imap, tmap = shard_map(a.instruct), shard_map(a.thinking)
    by_shard = {}
    for name, shard in imap.items():
        by_shard.setdefault(shard, []).append(name)
    written = 0
    written_files = []
    for shard, names in sorted(by_shard.items()):
        merged = {}
        thinking_files = {}
        with safe_open(os.path.join(a.instruct, shard), "pt") as fi:
            for name in names:
                tfile = tmap[name]
                if tfile not in thinking_files:
                    thinking_files[tfile] = safe_open(os.path.join(a.thinking, tfile), "pt")
                instruct = fi.get_tensor(name)
                thinking = thinking_files[tfile].get_tensor(name)
                if not instruct.is_floating_point():
                    merged[name] = instruct
                elif a.variant == "bf16":
                    merged[name] = instruct + a.lam * (thinking - instruct)
                else:
                    merged[name] = torch.lerp(instruct.float(), thinking.float(), a.lam).to(instruct.dtype)
        thinking_files.clear()
        out = os.path.join(a.output, shard)
        save_file(merged, out, metadata={"format": "pt"})
        written += os.path.getsize(out)
        written_files.append(out)
        del merged
    if os.path.exists(os.path.join(a.instruct, "model.safetensors.index.json")):
        with open(os.path.join(a.instruct, "model.safetensors.index.json")) as f:
            index = f.read()
        with open(os.path.join(a.output, "model.safetensors.index.json"), "w") as f:
            f.write(index)
        written_files.append(os.path.join(a.output, "model.safetensors.index.json"))
    unsynced = time.perf_counter() - started
    for path in written_files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    synced = time.perf_counter() - started
    print(json.dumps({"variant": a.variant, "seconds": synced, "seconds_unsynced": unsynced, "sync_seconds": synced - unsynced,
                      "bytes": written, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
