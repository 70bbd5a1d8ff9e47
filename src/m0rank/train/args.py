"""Settings of one training run, shared by ``m0rank train`` and the Python API."""

from __future__ import annotations

from dataclasses import dataclass

from m0rank.errors import InvalidInputError

__all__ = ["TrainArgs", "LOSSES", "NEGATIVES", "SAVE_MODES", "PAIRWISE_KINDS", "DISTILL_KINDS"]

LOSSES = ("listwise", "pairwise", "bce", "distill")
NEGATIVES = ("bm25", "model", "file")
SAVE_MODES = ("merged", "adapter")
SAVE_DTYPES = ("float32", "bfloat16", "float16")
PAIRWISE_KINDS = ("ranknet", "margin")
DISTILL_KINDS = ("margin-mse", "kl")


@dataclass(frozen=True, kw_only=True)
class TrainArgs:
    """Everything that decides a run (written into the checkpoints and the model card).

    Attributes:
        model: Starting checkpoint: folder, hub id or built-in name.
        data: Training data: a JSONL file (``{"query", "pos", "neg"}`` per line) or a
            BEIR-layout folder (negatives mined, see ``negatives``).
        output: Folder for the trained model, checkpoints, log and model card.
        eval_data: BEIR-layout folder evaluated before, during and after training.
        loss: ``listwise`` (softmax CE over a group), ``pairwise``, ``bce`` or ``distill``.
        group_size: Documents per query in a group: one positive, the rest negatives.
        epochs: Passes over the training queries.
        lr: Peak learning rate; default 1e-4 with LoRA, 2e-5 for full fine-tuning.
        lora_r: LoRA rank; 0 trains every weight (full fine-tuning, cross-encoders).
        lora_alpha: LoRA scale numerator (scale ``alpha / r``).
        negatives: ``file`` (from the JSONL), ``bm25`` or ``model`` (mined from a BEIR
            folder); default ``file`` for a file and ``bm25`` for a folder.
        save: ``merged`` (the family's released layout) or ``adapter`` (peft adapter, head
            and a reference to the base, loaded by merging).
        save_dtype: Storage dtype of the saved weights. ``float32`` (default) keeps every
            trained bit (a small LoRA update can round away in bf16); ``bfloat16`` writes
            the released jina-reranker-m0's dtype and half the size (4.4 GB for m0).
        max_length: Longest prompt in tokens.
        max_pixels: Largest image area after resizing.
        bf16: Mixed precision (bf16 autocast) on CUDA; ``None`` picks it on CUDA, fp32 on CPU.
        gradient_checkpointing: Recompute decoder layers in the backward pass.
        resume: Continue from the newest checkpoint in ``output/checkpoints``.
        seed: Seed of data order, group sampling, new weights and dropout.
        groups_per_step: Query groups per optimizer step (micro-batches accumulate).
        max_batch_tokens: Token budget of one micro-batch (whole groups, packed).
        pairwise_kind: ``ranknet`` or ``margin`` for ``loss="pairwise"``.
        distill_kind: ``margin-mse`` or ``kl`` for ``loss="distill"``.
        bce_weight: Weight of the calibration BCE term added to non-BCE losses (0 turns it
            off); default 0.1.
        temperature: Softmax temperature of listwise and KL losses.
        margin: Margin of the ``margin`` pairwise loss.
        warmup_ratio: Share of steps with a linear warm-up.
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping norm (0: off).
        eval_every: Evaluate every this many steps (0: before and after only).
        save_every: Checkpoint every this many steps (0: at the end of every epoch).
        keep_checkpoints: Newest checkpoints kept on disk (0: all).
        eval_k: BM25 candidates reranked per evaluation query.
        num_negatives: Negatives kept per mined query.
        mine_depth: BM25 candidates a miner looks at.
        negatives_model: Model that mines ``negatives="model"`` (default: ``model``).
        train_vision: Put LoRA on the vision tower too (jina-m0).
        device: ``cpu``/``cuda``...; default CUDA when available.
        show_progress: Progress bar with loss and throughput.
    """

    model: str
    data: str
    output: str
    eval_data: str | None = None
    loss: str = "listwise"
    group_size: int = 8
    epochs: int = 1
    lr: float | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    negatives: str | None = None
    save: str = "merged"
    save_dtype: str = "float32"
    max_length: int = 10240
    max_pixels: int = 602112
    bf16: bool | None = None
    gradient_checkpointing: bool = False
    resume: bool = False
    seed: int = 0
    groups_per_step: int = 4
    max_batch_tokens: int = 16384
    pairwise_kind: str = "ranknet"
    distill_kind: str = "margin-mse"
    bce_weight: float = 0.1
    temperature: float = 1.0
    margin: float = 1.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 0
    save_every: int = 0
    keep_checkpoints: int = 2
    eval_k: int = 100
    num_negatives: int = 25
    mine_depth: int = 100
    negatives_model: str | None = None
    train_vision: bool = False
    device: str | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        _choice("loss", self.loss, LOSSES)
        _choice("save", self.save, SAVE_MODES)
        _choice("save_dtype", self.save_dtype, SAVE_DTYPES)
        _choice("pairwise_kind", self.pairwise_kind, PAIRWISE_KINDS)
        _choice("distill_kind", self.distill_kind, DISTILL_KINDS)
        if self.negatives is not None:
            _choice("negatives", self.negatives, NEGATIVES)
        for name in ("epochs", "groups_per_step", "max_batch_tokens", "max_length",
                     "max_pixels", "eval_k", "num_negatives", "mine_depth"):
            _at_least(name, getattr(self, name), 1)
        _at_least("group_size", self.group_size, 2)
        for name in ("lora_r", "lora_alpha", "eval_every", "save_every", "keep_checkpoints"):
            _at_least(name, getattr(self, name), 0)
        for name in ("bce_weight", "weight_decay", "max_grad_norm", "warmup_ratio"):
            _at_least(name, getattr(self, name), 0)
        if self.lr is not None and not self.lr > 0:
            raise InvalidInputError(f"lr must be > 0, got {self.lr!r}")
        if not self.temperature > 0:
            raise InvalidInputError(f"temperature must be > 0, got {self.temperature!r}")
        if self.save == "adapter" and self.lora_r == 0:
            raise InvalidInputError("save='adapter' needs LoRA (lora_r > 0); full fine-tuning "
                                    "saves the merged model")

    @property
    def learning_rate(self) -> float:
        """``lr``, or 1e-4 with LoRA and 2e-5 for full fine-tuning."""
        if self.lr is not None:
            return self.lr
        return 1e-4 if self.lora_r else 2e-5


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _at_least(name: str, value: float, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise InvalidInputError(f"{name} must be a number >= {low}, got {value!r}")
