"""Shared helpers for the interop scripts: find a checkpoint's shards and read every tensor."""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, List

import torch
from safetensors import safe_open

INT_VIEW = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}
BITS = {torch.bfloat16: 16, torch.float16: 16, torch.float32: 32}


def shard_files(model_dir: str) -> List[str]:
    """The shard files of a model folder: those index.json names, else model.safetensors."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return [os.path.join(model_dir, s) for s in sorted(set(weight_map.values()))]
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return [single]
    raise SystemExit(f"{model_dir}: neither model.safetensors.index.json nor model.safetensors")


def load_tensors(model_dir: str) -> Dict[str, torch.Tensor]:
    tensors: Dict[str, torch.Tensor] = {}
    for path in shard_files(model_dir):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                if name in tensors:
                    raise SystemExit(f"{model_dir}: tensor {name} is in more than one shard")
                tensors[name] = f.get_tensor(name)
    return tensors


def f32(x: float) -> float:
    """x rounded to f32, as PyTorch's CPU kernels see a Python-float scalar for f32 / bf16 math."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of a float tensor, as int64 (unsigned) for printing and comparing."""
    v = t.contiguous().view(INT_VIEW[t.dtype]).to(torch.int64)
    return v & ((1 << BITS[t.dtype]) - 1)
