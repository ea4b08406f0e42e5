"""Check that real tools load a weightmix output model folder.

    python scripts/interop/load_check.py OUT [OUT ...] [--no-transformers] [--tokens 1,2,3,4]

1. safetensors: safe_open reads every shard and every tensor; when model.safetensors.index.json
   exists, every tensor it lists is found in the shard it names, and every shard tensor is listed.
2. transformers: AutoModelForCausalLM.from_pretrained(OUT, torch_dtype=torch.bfloat16) loads the
   model with no missing or unexpected weights, and one forward pass on a few token ids gives
   logits of shape [1, n_tokens, vocab_size] with finite values.
Prints one JSON line per output folder (several folders share one import of transformers);
exit 0 when all is well, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import torch
from safetensors import safe_open


def check_safetensors(out: str) -> dict:
    index_path = os.path.join(out, "model.safetensors.index.json")
    report = {"indexed": os.path.exists(index_path), "shards": 0, "tensors": 0, "bytes": 0}
    if report["indexed"]:
        with open(index_path) as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        shards = sorted(set(weight_map.values()))
    else:
        weight_map = None
        shards = ["model.safetensors"]
    seen = {}
    for shard in shards:
        with safe_open(os.path.join(out, shard), framework="pt") as f:
            for name in f.keys():
                t = f.get_tensor(name)  # reads the bytes
                if name in seen:
                    raise AssertionError(f"{name} is in {seen[name]} and {shard}")
                seen[name] = shard
                report["bytes"] += t.numel() * t.element_size()
        report["shards"] += 1
    report["tensors"] = len(seen)
    if weight_map is not None:
        for name, shard in weight_map.items():
            if seen.get(name) != shard:
                raise AssertionError(f"index.json puts {name} in {shard}, found in {seen.get(name)}")
        extra = sorted(set(seen) - set(weight_map))
        if extra:
            raise AssertionError(f"tensors in shards but not in index.json: {extra[:5]}")
        total = index.get("metadata", {}).get("total_size")
        if total is not None and int(total) != report["bytes"]:
            raise AssertionError(f"index.json total_size {total} != {report['bytes']} tensor bytes")
    return report


def check_transformers(out: str, tokens: list) -> dict:
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(out)
    # transformers 5 renamed torch_dtype to dtype (the old name still works, with a warning)
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    kwargs = {dtype_kw: torch.bfloat16}
    experts = None
    moe_width = getattr(config, "moe_intermediate_size", None)
    if moe_width and (moe_width * 2) % 16 != 0:
        # transformers 5's default MoE kernel (torch._grouped_mm) needs 16-byte strides; the real
        # Qwen3-30B-A3B (768) has them, a width-scaled fixture may not: use the per-expert loop.
        experts = kwargs["experts_implementation"] = "eager"
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True, **kwargs)
    problems = {k: sorted(v) for k, v in info.items() if v}
    if problems:
        raise AssertionError(f"from_pretrained loading info: {json.dumps(problems)[:800]}")
    model.eval()
    ids = torch.tensor([tokens], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    shape = list(logits.shape)
    if shape != [1, len(tokens), config.vocab_size]:
        raise AssertionError(f"logits shape {shape}, expected [1, {len(tokens)}, {config.vocab_size}]")
    if not torch.isfinite(logits.float()).all():
        raise AssertionError("logits are not all finite")
    return {
        "transformers": transformers.__version__,
        "class": type(model).__name__,
        "model_type": config.model_type,
        "dtype": str(next(model.parameters()).dtype),
        "parameters": sum(p.numel() for p in model.parameters()),
        "logits_shape": shape,
        **({"experts_implementation": experts} if experts else {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outputs", nargs="+", help="weightmix output model folders")
    ap.add_argument("--no-transformers", action="store_true", help="only the safetensors check")
    ap.add_argument("--tokens", default="1,2,3,4", help="token ids for the forward pass")
    args = ap.parse_args()
    failures = 0
    for out in args.outputs:
        summary = {"ok": False, "output": out, "torch": torch.__version__}
        try:
            summary["safetensors"] = check_safetensors(out)
            if not args.no_transformers:
                summary["model"] = check_transformers(out, [int(t) for t in args.tokens.split(",")])
            summary["ok"] = True
        except Exception as e:  # report, do not crash: the JSON lines are the interface
            summary["error"] = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
            failures += 1
        print(json.dumps(summary), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
