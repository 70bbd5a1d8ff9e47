"""Fingerprint of the engine's scores on bench/throughput.py's fixed-seed workloads.

A refactor that must not change any score (issue 9's redesign) is checked by running this on
the commit before and after and comparing the digests: they are SHA-256 over the float32 bytes
of every score, so "identical" means bit-identical.

Usage::

    python bench/score_digest.py                      # this checkout
    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src python bench/score_digest.py --bench /tmp/old/bench/throughput.py

Results of the issue-9 check are in ``bench/results/score_digest_issue9.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def load_bench(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("throughput_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def digests(bench: Any, pairs: int, seed: int) -> dict[str, dict[str, Any]]:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as workdir:
        model = bench.build_model(bench.SMALL_SIZES, "cpu", torch.float32, seed, Path(workdir))
    engine = bench.Engine(model, bench.EngineConfig(max_batch_size=64))
    tokenizer = model.encoder.tokenizer
    builders = {"text": (bench.text_workload, pairs), "image": (bench.image_workload, pairs),
                "mixed": (bench.mixed_workload, 2 * pairs)}
    out: dict[str, dict[str, Any]] = {}
    for name, (builder, count) in builders.items():
        workload = builder(tokenizer, count, seed)
        for packing in (False, True):
            scores = np.asarray(bench._engine_scores(engine, workload.pairs, packing=packing),
                                dtype=np.float32)
            key = f"{name}/{'packed' if packing else 'padded'}"
            out[key] = {"pairs": len(scores),
                        "sha256": hashlib.sha256(scores.tobytes()).hexdigest(),
                        "first": [float(x) for x in scores[:3]]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=HERE / "throughput.py",
                        help="the throughput.py whose model and workloads to use")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = digests(load_bench(args.bench), args.pairs, args.seed)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
