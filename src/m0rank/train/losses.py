"""Ranking losses over groups of logits: one positive (column 0) and its negatives.

Every loss takes ``logits`` of shape ``(groups, group_size)``, the positive first, and returns
a scalar mean over groups. Sources:

- :func:`bce_loss`: pointwise binary cross-entropy, positive 1 and negatives 0, on
  ``sigmoid(logit - offset)`` (monoBERT, Nogueira & Cho 2019, "Passage Re-ranking with
  BERT"; sentence-transformers' ``BinaryCrossEntropyLoss``).
- :func:`ranknet_loss`: RankNet, ``log(1 + exp(-(s_pos - s_neg)))`` over (positive, negative)
  pairs (Burges et al. 2005, "Learning to Rank using Gradient Descent").
- :func:`margin_loss`: pairwise hinge ``max(0, margin - (s_pos - s_neg))`` (Herbrich et al.
  2000; PyTorch ``MarginRankingLoss``).
- :func:`listwise_loss`: softmax cross-entropy of the positive within its group, i.e. InfoNCE
  (van den Oord et al. 2018) / localized contrastive estimation (Gao et al. 2021, "Rethink
  Training of BERT Rerankers in Multi-Stage Retrieval Pipelines"), the loss named in
  jina-reranker-v2's and jina-reranker-m0's recipes.
- :func:`margin_mse_loss`: MarginMSE distillation, ``((s_pos - s_neg) - (t_pos - t_neg))^2``
  (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
  Knowledge Distillation").
- :func:`kl_distill_loss`: KL divergence from the teacher's to the student's softmax over the
  group (RocketQAv2, Ren et al. 2021; Hinton et al. 2015 for temperature).

Listwise, pairwise and MarginMSE losses do not change when every logit of a group moves by
the same amount, so nothing anchors ``sigmoid(logit - 2.65)``; :func:`combined_loss` adds a
weighted BCE term to keep the released calibration (docs/train.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from m0rank.errors import InvalidInputError

__all__ = ["bce_loss", "ranknet_loss", "margin_loss", "listwise_loss", "margin_mse_loss",
           "kl_distill_loss", "combined_loss", "group_labels"]


def group_labels(logits: torch.Tensor) -> torch.Tensor:
    """``(groups, group_size)`` targets: 1 for the positive (column 0), 0 for negatives."""
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return labels


def bce_loss(logits: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    """Pointwise BCE of ``sigmoid(logit - offset)`` against 1 (positive) / 0 (negatives)."""
    return F.binary_cross_entropy_with_logits(logits - offset, group_labels(logits))


def ranknet_loss(logits: torch.Tensor) -> torch.Tensor:
    """RankNet: mean over (positive, negative) pairs of ``softplus(-(s_pos - s_neg))``."""
    return F.softplus(-(logits[:, :1] - logits[:, 1:])).mean()


def margin_loss(logits: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Pairwise hinge: mean of ``relu(margin - (s_pos - s_neg))``."""
    return F.relu(margin - (logits[:, :1] - logits[:, 1:])).mean()


def listwise_loss(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE: cross-entropy of the positive (column 0) under a softmax over the group."""
    targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits / temperature, targets)


def margin_mse_loss(logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MarginMSE: squared error between student and teacher margins (positive - negative)."""
    student_margin = logits[:, :1] - logits[:, 1:]
    teacher_margin = teacher[:, :1] - teacher[:, 1:]
    return F.mse_loss(student_margin, teacher_margin.to(logits.dtype))


def kl_distill_loss(logits: torch.Tensor, teacher: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T))`` per group, times ``T^2``."""
    student = F.log_softmax(logits / temperature, dim=-1)
    target = F.log_softmax(teacher.to(logits.dtype) / temperature, dim=-1)
    return F.kl_div(student, target, log_target=True, reduction="batchmean") * temperature**2


def combined_loss(logits: torch.Tensor, *, loss: str, teacher: torch.Tensor | None = None,
                  pairwise_kind: str = "ranknet", distill_kind: str = "margin-mse",
                  bce_weight: float = 0.0, offset: float = 0.0, temperature: float = 1.0,
                  margin: float = 1.0) -> torch.Tensor:
    """The run's loss: the ranking loss named by ``loss``, plus ``bce_weight`` times the
    calibration BCE on ``sigmoid(logit - offset)`` (not added to ``loss="bce"`` itself).

    Raises:
        InvalidInputError: Unknown loss, or ``distill`` without teacher scores.
    """
    if loss == "bce":
        return bce_loss(logits, offset)
    if loss == "listwise":
        main = listwise_loss(logits, temperature)
    elif loss == "pairwise":
        main = ranknet_loss(logits) if pairwise_kind == "ranknet" else margin_loss(logits, margin)
    elif loss == "distill":
        if teacher is None:
            raise InvalidInputError("loss 'distill' needs teacher scores (pos_scores/neg_scores)")
        main = (margin_mse_loss(logits, teacher) if distill_kind == "margin-mse"
                else kl_distill_loss(logits, teacher, temperature))
    else:
        raise InvalidInputError(f"loss must be listwise, pairwise, bce or distill, got {loss!r}")
    return main + bce_weight * bce_loss(logits, offset) if bce_weight else main
