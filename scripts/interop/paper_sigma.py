"""The paper's Table 1 sigma of two checkpoints as the authors' script computes it (wutaiqiang/Shadow-FT, sigma_v2.py):
per tensor named model.layers.N..., sum|a - b| / (sum|a| + sum|b|) on the float32 values with numpy's float32 sums,
then the mean over those tensors. Prints one JSON line: {"sigma": ..., "tensors": ...}."""
from __future__ import annotations

import argparse
import json
import re

import numpy as np

from common import load_tensors

LAYER = re.compile(r"model\.layers\.(\d+)\.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args()
    a, b = load_tensors(args.a), load_tensors(args.b)
    ratios = []
    for name, ta in a.items():
        if not LAYER.search(name) or not ta.is_floating_point():
            continue
        x, y = ta.float().numpy(), b[name].float().numpy()
        ratios.append(np.abs(x - y).sum() / (np.abs(x).sum() + np.abs(y).sum()))
    print(json.dumps({"sigma": float(np.mean(ratios)), "tensors": len(ratios)}))


if __name__ == "__main__":
    main()
