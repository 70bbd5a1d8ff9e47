"""MiniLM's BERT as an ONNX graph run by ONNX Runtime: v2's fp32 route on CPUs without bf16.

Reference: the same post-norm BERT as ``encoders.bert_modules`` (Devlin et al. 2019;
all-MiniLM-L6-v2 with mean pooling and L2 normalisation, Reimers & Gurevych 2019), written
node by node with ``onnx.helper`` from the checkpoint's tensors and run with ONNX Runtime's
CPU provider.

Why: where the CPU has no native bf16, ``minilm_precision: auto`` used to run MiniLM in fp32
torch, whose matrix products go to MKL; on the AMD benchmark CPU with bf16 turned off v2
took 5.51 s per 100 English documents of 256 pieces that way, over the 4 s goal, and 3.29 s
with this route (one run, ``bench/results/offline_speed.json``; the encoder alone 4.43 s
against 3.53 s there), with vectors within 1e-5 of torch's (tested). The graph is built in
memory at load, not exported by tracing (``torch.onnx.export`` took 2.3 s, a one-off
measurement) and not cached on disk; the cold start was 3.39 s against 2.78 s in fp32
torch.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np

__all__ = ["OnnxBert", "onnxruntime_available"]


def onnxruntime_available() -> bool:
    """Whether the ``onnx`` (graph building) and ``onnxruntime`` packages are importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


class OnnxBert:
    """Callable like ``encoders.bert_modules``'s BERT: ``(ids, mask)`` torch tensors in, unit
    vectors ``(B, H)`` out, so ``encoders.run_padded`` drives either.

    Args:
        config: The checkpoint's ``config.json`` (hidden size, heads, layers, eps).
        state: Tensors named as ``encoders.bert_modules``'s module (``encoders._bert_state``).
        threads: Intra-op threads of the ONNX Runtime session; default: torch's
            ``get_num_threads()``, so a server replica's share of the cores (set before its
            model loads) holds for both.
    """

    def __init__(self, config: dict[str, Any], state: dict[str, Any],
                 threads: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        model = _bert_graph(config, {name: _array(t) for name, t in state.items()})
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, ids: Any, mask: Any) -> Any:
        """Unit vectors of a padded batch (``run_padded`` passes torch tensors)."""
        import torch

        out = self.session.run(None, {"ids": ids.numpy(), "mask": mask.numpy()})[0]
        return torch.from_numpy(out)


def _array(tensor: Any) -> np.ndarray:
    """A checkpoint tensor as the fp32 numpy array an ONNX initializer is built from."""
    return tensor.detach().float().numpy()


def _bert_graph(config: dict[str, Any], weights: dict[str, np.ndarray]) -> bytes:
    """The serialised ONNX model (opset 17) of the BERT in ``weights``."""
    from onnx import TensorProto, helper

    graph = _GraphBuilder(weights)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    eps = float(config.get("layer_norm_eps", 1e-12))
    x = graph.embeddings(eps)
    bias = graph.attention_bias()
    for i in range(config["num_hidden_layers"]):
        x = graph.layer(f"layers.{i}", x, bias, hidden, heads, eps)
    vectors = graph.mean_pool_normalised(x)
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
              for name in ("ids", "mask")]
    output = helper.make_tensor_value_info(vectors, TensorProto.FLOAT, ["batch", hidden])
    body = helper.make_graph(graph.nodes, "minilm", inputs, [output], graph.initializers)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime releases since 1.10 read
    return model.SerializeToString()  # (onnx.checker would serialise it once more: tested)


class _GraphBuilder:
    """Nodes and initializers of one graph; each method returns its output's name."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = f"const{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        value = self.weights[name]
        return self.const(np.ascontiguousarray(value.T) if transpose else value)

    def op(self, kind: str, *inputs: str, **attributes: Any) -> str:
        from onnx import helper

        self._count += 1
        out = f"{kind.lower()}{self._count}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attributes))
        return out

    def linear(self, prefix: str, x: str) -> str:
        """``x @ W.T + b`` of the ``nn.Linear`` named ``prefix``."""
        product = self.op("MatMul", x, self.weight(f"{prefix}.weight", transpose=True))
        return self.op("Add", product, self.weight(f"{prefix}.bias"))

    def norm(self, prefix: str, x: str, eps: float) -> str:
        return self.op("LayerNormalization", x, self.weight(f"{prefix}.weight"),
                       self.weight(f"{prefix}.bias"), axis=-1, epsilon=eps)

    def embeddings(self, eps: float) -> str:
        """Word + position + token type 0 embeddings, then LayerNorm."""
        words = self.op("Gather", self.weight("word.weight"), "ids")
        tokens = self.op("Gather", self.op("Shape", "ids"), self.const(1, np.int64))
        positions = self.op("Range", self.const(0, np.int64), tokens, self.const(1, np.int64))
        x = self.op("Add", words, self.op("Gather", self.weight("position.weight"), positions))
        x = self.op("Add", x, self.const(self.weights["token_type.weight"][0]))
        return self.norm("norm", x, eps)

    def attention_bias(self) -> str:
        """``(1 - mask) * -1e4`` as ``(B, 1, 1, T)``, added to every attention score."""
        mask = self.op("Cast", "mask", to=1)  # FLOAT
        bias = self.op("Mul", self.op("Sub", self.const(1.0), mask), self.const(-1e4))
        return self.op("Unsqueeze", bias, self.const([1, 2], np.int64))

    def layer(self, prefix: str, x: str, bias: str, hidden: int, heads: int,
              eps: float) -> str:
        """Self-attention and feed-forward, each with a residual and a post LayerNorm."""
        size = hidden // heads
        qkv = self.op("Reshape", self.linear(f"{prefix}.qkv", x),
                      self.const([0, 0, 3, heads, size], np.int64))
        qkv = self.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # (3, B, heads, T, size)
        q, k, v = (self.op("Gather", qkv, self.const(i, np.int64), axis=0) for i in range(3))
        scores = self.op("MatMul", q, self.op("Transpose", k, perm=[0, 1, 3, 2]))
        scores = self.op("Add", self.op("Mul", scores, self.const(1 / math.sqrt(size))), bias)
        attended = self.op("MatMul", self.op("Softmax", scores, axis=-1), v)
        attended = self.op("Reshape", self.op("Transpose", attended, perm=[0, 2, 1, 3]),
                           self.const([0, 0, hidden], np.int64))
        x = self.norm(f"{prefix}.norm1", self.op("Add", x, self.linear(f"{prefix}.out",
                                                                       attended)), eps)
        inner = self.gelu(self.linear(f"{prefix}.up", x))
        return self.norm(f"{prefix}.norm2",
                         self.op("Add", x, self.linear(f"{prefix}.down", inner)), eps)

    def gelu(self, x: str) -> str:
        """Exact GELU, ``x * (1 + erf(x / sqrt 2)) / 2``, as torch's default."""
        erf = self.op("Erf", self.op("Mul", x, self.const(1 / math.sqrt(2))))
        return self.op("Mul", self.op("Mul", x, self.const(0.5)),
                       self.op("Add", erf, self.const(1.0)))

    def mean_pool_normalised(self, x: str) -> str:
        """Mask-weighted mean over tokens, divided by its L2 norm (clamped as torch's)."""
        weights = self.op("Unsqueeze", self.op("Cast", "mask", to=1), self.const([-1], np.int64))
        axis = self.const([1], np.int64)
        total = self.op("ReduceSum", self.op("Mul", x, weights), axis, keepdims=0)
        count = self.op("Max", self.op("ReduceSum", weights, axis, keepdims=0),
                        self.const(1e-9))
        pooled = self.op("Div", total, count)
        norm = self.op("Sqrt", self.op("ReduceSum", self.op("Mul", pooled, pooled),
                                       self.const([-1], np.int64), keepdims=1))
        return self.op("Div", pooled, self.op("Max", norm, self.const(1e-12)))
