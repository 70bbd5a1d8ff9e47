"""GPU check (``-m gpu``; skipped without CUDA; not run in a CPU-only session).

One LoRA step of the full-size jina-reranker-m0 shape (Qwen2-VL-2B sizes, random weights,
bf16) on a group of 4 pairs of 10,240 tokens, with gradient checkpointing, through the
family's packed ``train_logits``: it must fit in memory; tokens/s and peak memory are printed
(``-s``) for docs/train.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from m0rank.config import ImageSizing, ScoreOptions
from m0rank.types import Document

pytestmark = pytest.mark.gpu

TOKENS = 10240


def _full_size_model(folder: Path):  # noqa: ANN202 - JinaM0Reranker
    from transformers import Qwen2VLConfig

    from m0rank.model.jina_m0.reranker import JinaM0Module, JinaM0Reranker
    from m0rank.model.qwen2vl.inputs import Qwen2VLInputEncoder
    from m0rank.testing.checkpoints import FULL_SIZES, m0_config_dict, write_qwen2vl_side_files

    raw = m0_config_dict(FULL_SIZES)
    write_qwen2vl_side_files(folder, raw)  # tokenizer and preprocessor files, no weights
    config = {k: v for k, v in raw.items() if k not in ("architectures", "auto_map", "torch_dtype")}
    torch.manual_seed(0)
    with torch.device("cuda"):
        module = JinaM0Module(Qwen2VLConfig.from_dict(config)).to(torch.bfloat16)
    encoder = Qwen2VLInputEncoder.from_pretrained(folder, ImageSizing())
    return JinaM0Reranker(module, encoder, torch.device("cuda"), vision_cache_bytes=0)


def test_one_lora_step_at_10k_tokens_fits(tmp_path: Path) -> None:
    from m0rank.train.adapters import attach_lora
    from m0rank.train.losses import combined_loss

    model = _full_size_model(tmp_path)
    model.module.model.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False})
    peft_model = attach_lora(model, r=16, alpha=32, include_vision=False)
    model.module.train()
    options = ScoreOptions(max_length=TOKENS, max_query_length=512)
    text = " ".join(f"word{i}" for i in range(TOKENS))
    pairs = [model.preprocess(Document(text=f"query {g}"), Document(text=text), options, "d")
             for g in range(4)]
    tokens = sum(p.num_tokens for p in pairs)
    assert all(p.num_tokens > TOKENS - 600 for p in pairs)  # document truncated to 9,728
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    logits = model.train_logits(pairs).float().view(1, 4)
    loss = combined_loss(logits, loss="listwise", bce_weight=0.1, offset=2.65)
    loss.backward()
    optimizer.step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"one LoRA step, {tokens} tokens in 4 pairs: {seconds:.2f} s, "
          f"{tokens / seconds:.0f} tokens/s, peak {peak:.1f} GiB")
    assert torch.isfinite(loss)
    assert peak < 80
