"""Write an Instruct/Thinking pair full of special values, for torch_reference.py.

    python scripts/interop/make_special_pair.py --like FIXTURE_MODEL_DIR --out DIR [--dtype bf16|f16|f32] [--seed N]

Takes the tensor names, shapes and sidecar files (config.json, tokenizer, ...) of an existing model
folder (e.g. the tiny fixture's instruct/) and writes DIR/instruct and DIR/thinking with the same
names and shapes, one model.safetensors each, whose elements mix:
  - close pairs (b = a + small noise), the rounding-sensitive common case, at weight scale and in
    the subnormal range (results land among subnormals);
  - uniformly random bit patterns for a and b (NaNs with payloads, signalling NaNs, subnormals,
    ±Inf, huge values);
  - a and b from a table of special values (±0, smallest/largest subnormal, smallest normal,
    ±max finite, ±Inf, ±quiet NaN, signalling NaN, ±1), every combination appearing;
  - a normal value paired with a special one.
Extra tensors with odd element counts (1, 7, 37, 1001) are added so vector tails are exercised.
"""
from __future__ import annotations

import argparse
import os
import shutil

import torch
from safetensors.torch import save_file

from common import load_tensors

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}

# bit patterns per dtype: ±0, min sub, max sub, min normal, ±max finite, ±Inf, +qNaN, -qNaN,
# qNaN with payload, sNaN with payload, ±1, a value near overflow
SPECIALS = {
    torch.bfloat16: [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80,
                     0x7FC0, 0xFFC0, 0x7FC5, 0x7F81, 0xFFA5, 0x3F80, 0xBF80, 0x7F00],
    torch.float16: [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                    0x7E00, 0xFE00, 0x7E05, 0x7C01, 0xFD25, 0x3C00, 0xBC00, 0x7800],
    torch.float32: [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000,
                    0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000,
                    0x7FC12345, 0x7F800001, 0xFFA00005, 0x3F800000, 0xBF800000, 0x7F000000],
}
INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}


def from_bits(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    nbits = 32 if dtype == torch.float32 else 16
    v = values.to(torch.int64) & ((1 << nbits) - 1)
    v = torch.where(v >= (1 << (nbits - 1)), v - (1 << nbits), v)  # to the signed view
    return v.to(INT[dtype]).view(dtype)


def special_pair(n: int, dtype: torch.dtype, g: torch.Generator):
    nbits = 32 if dtype == torch.float32 else 16
    specials = torch.tensor(SPECIALS[dtype], dtype=torch.int64)
    k = len(specials)
    # close pairs at weight scale, computed in f32 and rounded to dtype
    a = (torch.randn(n, generator=g) * 0.02).to(dtype)
    b = (a.float() + torch.randn(n, generator=g) * 0.003).to(dtype)
    kind = torch.randint(0, 10, (n,), generator=g)
    ai = a.view(INT[dtype]).to(torch.int64) & ((1 << nbits) - 1)
    bi = b.view(INT[dtype]).to(torch.int64) & ((1 << nbits) - 1)
    # 1: subnormal-range close pairs (tiny magnitudes, results subnormal or zero)
    tiny = torch.finfo(dtype).tiny
    sa = (torch.randn(n, generator=g) * tiny).to(dtype)
    sb = (sa.float() + torch.randn(n, generator=g) * tiny * 0.5).to(dtype)
    sai = sa.view(INT[dtype]).to(torch.int64) & ((1 << nbits) - 1)
    sbi = sb.view(INT[dtype]).to(torch.int64) & ((1 << nbits) - 1)
    # 2, 3: uniformly random bit patterns
    ra = torch.randint(0, 1 << nbits, (n,), generator=g, dtype=torch.int64)
    rb = torch.randint(0, 1 << nbits, (n,), generator=g, dtype=torch.int64)
    # 4, 5: specials × specials, every combination in turn
    idx = torch.arange(n)
    pa = specials[idx % k]
    pb = specials[(idx // k) % k]
    # 6: normal × special, 7: special × normal
    sp = specials[torch.randint(0, k, (n,), generator=g)]
    # 8: large magnitudes near overflow: a, b ≈ ±max/2..max (differences overflow)
    big = torch.finfo(dtype).max
    ba = (torch.rand(n, generator=g) * 2 - 1) * big
    bb = (torch.rand(n, generator=g) * 2 - 1) * big
    bai = ba.to(dtype).view(INT[dtype]).to(torch.int64) & ((1 << nbits) - 1)
    bbi = bb.to(dtype).view(INT[dtype]).to(torch.int64) & ((1 << nbits) - 1)
    out_a = ai.clone()
    out_b = bi.clone()
    for sel, xa, xb in [
        (kind == 1, sai, sbi),
        ((kind == 2) | (kind == 3), ra, rb),
        ((kind == 4) | (kind == 5), pa, pb),
        (kind == 6, ai, sp),
        (kind == 7, sp, bi),
        (kind == 8, bai, bbi),
    ]:
        out_a = torch.where(sel, xa, out_a)
        out_b = torch.where(sel, xb, out_b)
    # the first k*k elements (when there are that many): every special combination, in order
    m = min(n, k * k)
    out_a[:m] = pa[:m]
    out_b[:m] = pb[:m]
    return from_bits(out_a, dtype), from_bits(out_b, dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--like", required=True, help="model folder whose tensor names, shapes and sidecars to copy")
    ap.add_argument("--out", required=True, help="writes OUT/instruct and OUT/thinking")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    dtype = DTYPES[args.dtype]
    g = torch.Generator().manual_seed(args.seed)
    like = load_tensors(args.like)
    shapes = {name: tuple(t.shape) for name, t in sorted(like.items())}
    for n in (1, 7, 37, 1001):  # odd lengths: vector tails
        shapes[f"model.layers.0.mlp.odd_{n}.weight"] = (n,)
    pair = {"instruct": {}, "thinking": {}}
    for name, shape in shapes.items():
        numel = 1
        for s in shape:
            numel *= s
        a, b = special_pair(numel, dtype, g)
        pair["instruct"][name] = a.reshape(shape).contiguous()
        pair["thinking"][name] = b.reshape(shape).contiguous()
    for model, tensors in pair.items():
        d = os.path.join(args.out, model)
        os.makedirs(d, exist_ok=True)
        for entry in os.listdir(args.like):
            src = os.path.join(args.like, entry)
            if os.path.isfile(src) and not entry.endswith(".safetensors") and not entry.endswith(".index.json"):
                shutil.copyfile(src, os.path.join(d, entry))
        save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    print(f"{len(shapes)} tensors, {args.dtype}, in {args.out}/instruct and {args.out}/thinking")


if __name__ == "__main__":
    main()
