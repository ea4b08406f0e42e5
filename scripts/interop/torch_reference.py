"""Recompute a weightmix interpolation with PyTorch and compare every output tensor bit for bit.

    python scripts/interop/torch_reference.py --instruct A --thinking B --output OUT \
        --lambda 0.8 --numerics exact|mi [--nan-bits strict|any]

The reference is what ../shared/ARCHITECTURE.md's "Numerics contract" promises:
  exact  torch.lerp(a.float(), b.float(), λ).to(dtype), except that λ ∈ {0, 1} (after rounding λ
         to f32, as the kernels do) is a plain copy of a or b;
  mi     the paper's released script: a + λ * (b - a) in the tensors' own dtype (bf16), PyTorch 2.x
         tensor arithmetic, λ a Python float; no special case at the endpoints.
Both are computed twice: on contiguous tensors (PyTorch's vectorized CPU kernels, what anyone
running the obvious code gets) and on strided views (PyTorch's scalar c10 fallback). The verdict
is against the contiguous result; the strided one is reported beside it because PyTorch's two
paths do not agree on NaN bit patterns (see README.md).

Elements are compared on their raw bits (int16/int32 views). A mismatch where both sides are NaN
is a "nan_bit" mismatch; any other is a "value" mismatch. With --nan-bits strict (default) either
kind fails; with --nan-bits any only value mismatches fail (NaN-ness must still agree).
Prints one JSON line; exit 0 when everything matches, 1 on a mismatch, 2 on a usage/structure error.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from common import BITS, bits, f32, load_tensors

DTYPE_NAMES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}


def strided(t: torch.Tensor) -> torch.Tensor:
    """A non-contiguous view with t's values: PyTorch's TensorIterator takes its scalar loop."""
    flat = t.reshape(-1)
    holder = torch.empty(flat.numel() * 2, dtype=t.dtype)
    holder.view(BITS_INT[t.dtype])[::2] = flat.view(BITS_INT[t.dtype])
    return holder[::2]


BITS_INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}


def reference(a: torch.Tensor, b: torch.Tensor, lam: float, numerics: str, out_dtype: torch.dtype, path: str) -> torch.Tensor:
    shape = a.shape
    if path == "scalar":
        a, b = strided(a), strided(b)
    else:
        a, b = a.reshape(-1).contiguous(), b.reshape(-1).contiguous()
    if numerics == "exact":
        w = f32(lam)
        if w == 0.0:
            r = a if a.dtype == out_dtype else a.to(out_dtype)
        elif w == 1.0:
            r = b if b.dtype == out_dtype else b.to(out_dtype)
        else:
            r = torch.lerp(a.float(), b.float(), lam)
            if path == "scalar":
                r = strided(r)
            r = r.to(out_dtype)
    else:
        # the paper's script, verbatim in spirit: bf16 tensors, a Python float λ
        r = a + lam * (b - a)
        if r.dtype != out_dtype:
            r = r.to(out_dtype)
    return r.contiguous().reshape(shape)


def describe(name, flat_index, shape, a, b, want, got):
    idx = []
    rem = flat_index
    for s in reversed(shape):
        idx.append(rem % s if s else 0)
        rem //= s if s else 1
    hexw = 8 if want.dtype == torch.float32 else 4
    h = lambda t: f"0x{int(bits(t.reshape(-1)[flat_index:flat_index + 1])[0]):0{hexw}x}"
    val = lambda t: repr(float(t.reshape(-1)[flat_index]))
    return {
        "tensor": name,
        "element": flat_index,
        "index": list(reversed(idx)),
        "instruct": f"{h(a)} ({val(a)})",
        "thinking": f"{h(b)} ({val(b)})",
        "torch": f"{h(want)} ({val(want)})",
        "weightmix": f"{h(got)} ({val(got)})",
    }


def compare(want: torch.Tensor, got: torch.Tensor):
    """(value mismatch mask, nan-bit mismatch mask), flat."""
    wb, gb = bits(want).reshape(-1), bits(got).reshape(-1)
    differ = wb != gb
    both_nan = torch.isnan(want.reshape(-1).float()) & torch.isnan(got.reshape(-1).float())
    return differ & ~both_nan, differ & both_nan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instruct", required=True)
    ap.add_argument("--thinking", required=True)
    ap.add_argument("--output", required=True, help="weightmix's output model folder")
    ap.add_argument("--lambda", dest="lam", type=float, required=True)
    ap.add_argument("--numerics", choices=["exact", "mi"], default="exact")
    ap.add_argument("--nan-bits", choices=["strict", "any"], default="strict")
    args = ap.parse_args()
    if not math.isfinite(args.lam):
        print("--lambda must be finite", file=sys.stderr)
        return 2

    A, B, O = load_tensors(args.instruct), load_tensors(args.thinking), load_tensors(args.output)
    problems = []
    if set(A) != set(O):
        problems.append(f"tensor sets differ: missing {sorted(set(A) - set(O))[:5]}, extra {sorted(set(O) - set(A))[:5]}")
    if set(A) != set(B):
        problems.append("instruct and thinking hold different tensors")
    if problems:
        print(json.dumps({"ok": False, "error": "; ".join(problems)}))
        return 2

    summary = {
        "ok": True, "numerics": args.numerics, "lambda": args.lam, "lambda_f32": f32(args.lam),
        "endpoint_copy": args.numerics == "exact" and f32(args.lam) in (0.0, 1.0),
        "nan_bits": args.nan_bits, "tensors": 0, "elements": 0, "dtypes": {},
        "value_mismatches": 0, "nan_bit_mismatches": 0,
        "first_value_mismatch": None, "first_nan_bit_mismatch": None,
        "nan_patterns": {"torch": {}, "weightmix": {}},
        # the same reference through PyTorch's scalar (strided) path, compared with weightmix
        "torch_scalar_path": {"value_mismatches": 0, "nan_bit_mismatches": 0, "differs_from_vectorized": 0},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()},
    }
    for name in sorted(A):
        a, b, got = A[name], B[name], O[name]
        if a.dtype not in BITS or b.dtype not in BITS:
            # non-float tensors are copied from Instruct
            if not torch.equal(a, got):
                summary["value_mismatches"] += 1
                summary["first_value_mismatch"] = summary["first_value_mismatch"] or {"tensor": name, "element": None}
            continue
        if tuple(a.shape) != tuple(got.shape):
            print(json.dumps({"ok": False, "error": f"{name}: shape {list(got.shape)} != {list(a.shape)}"}))
            return 2
        if args.numerics == "mi" and a.dtype != b.dtype:
            print(json.dumps({"ok": False, "error": f"{name}: mi needs one dtype, got {a.dtype} and {b.dtype}"}))
            return 2
        want = reference(a, b, args.lam, args.numerics, got.dtype, "vector")
        want_scalar = reference(a, b, args.lam, args.numerics, got.dtype, "scalar")
        summary["tensors"] += 1
        summary["elements"] += a.numel()
        key = f"{DTYPE_NAMES[a.dtype]}->{DTYPE_NAMES[got.dtype]}"
        summary["dtypes"][key] = summary["dtypes"].get(key, 0) + 1
        for who, t in (("torch", want), ("weightmix", got)):
            nb = bits(t).reshape(-1)[torch.isnan(t.reshape(-1).float())]
            for v, c in zip(*torch.unique(nb, return_counts=True)):
                hexw = 8 if t.dtype == torch.float32 else 4
                k = f"0x{int(v):0{hexw}x}"
                summary["nan_patterns"][who][k] = summary["nan_patterns"][who].get(k, 0) + int(c)
        vm, nm = compare(want, got)
        summary["value_mismatches"] += int(vm.sum())
        summary["nan_bit_mismatches"] += int(nm.sum())
        if vm.any() and summary["first_value_mismatch"] is None:
            summary["first_value_mismatch"] = describe(name, int(vm.nonzero()[0]), list(a.shape), a, b, want, got)
        if nm.any() and summary["first_nan_bit_mismatch"] is None:
            summary["first_nan_bit_mismatch"] = describe(name, int(nm.nonzero()[0]), list(a.shape), a, b, want, got)
        svm, snm = compare(want_scalar, got)
        sp = summary["torch_scalar_path"]
        sp["value_mismatches"] += int(svm.sum())
        sp["nan_bit_mismatches"] += int(snm.sum())
        sp["differs_from_vectorized"] += int((bits(want) != bits(want_scalar)).sum())

    for who, counts in summary["nan_patterns"].items():  # the most common few, and how many kinds
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
        summary["nan_patterns"][who] = {"distinct": len(counts), "total": sum(counts.values()), "top": dict(top)}
    failed = summary["value_mismatches"] > 0 or (args.nan_bits == "strict" and summary["nan_bit_mismatches"] > 0)
    summary["ok"] = not failed
    print(json.dumps(summary, sort_keys=False))
    if failed:
        first = summary["first_value_mismatch"] or summary["first_nan_bit_mismatch"]
        print(f"MISMATCH: {summary['value_mismatches']} value, {summary['nan_bit_mismatches']} NaN-bit; "
              f"first in {first['tensor']} element {first['element']} {first.get('index')}: "
              f"instruct {first.get('instruct')}, thinking {first.get('thinking')}, "
              f"torch {first.get('torch')}, weightmix {first.get('weightmix')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
