"""Each loss against its formula, and which losses ignore a uniform shift of the logits."""

from __future__ import annotations

import math

import pytest
import torch

from m0rank.errors import InvalidInputError
from m0rank.train.losses import (
    bce_loss,
    combined_loss,
    kl_distill_loss,
    listwise_loss,
    margin_loss,
    margin_mse_loss,
    ranknet_loss,
)

LOGITS = torch.tensor([[2.0, 0.5, -1.0]])
TEACHER = torch.tensor([[4.0, 1.0, 0.0]])


def test_listwise_is_cross_entropy_of_the_positive() -> None:
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
    assert listwise_loss(LOGITS).item() == pytest.approx(expected, rel=1e-6)


def test_ranknet_and_margin_by_hand() -> None:
    diffs = [1.5, 3.0]
    ranknet = sum(math.log1p(math.exp(-d)) for d in diffs) / 2
    assert ranknet_loss(LOGITS).item() == pytest.approx(ranknet, rel=1e-6)
    assert margin_loss(LOGITS, margin=2.0).item() == pytest.approx((0.5 + 0.0) / 2)


def test_bce_uses_the_calibration_offset() -> None:
    probs = [1 / (1 + math.exp(-(x - 2.65))) for x in (2.0, 0.5, -1.0)]
    expected = -(math.log(probs[0]) + math.log(1 - probs[1]) + math.log(1 - probs[2])) / 3
    assert bce_loss(LOGITS, offset=2.65).item() == pytest.approx(expected, rel=1e-6)


def test_distillation_losses_by_hand() -> None:
    student, teacher = [1.5, 3.0], [3.0, 4.0]
    mse = sum((s - t) ** 2 for s, t in zip(student, teacher, strict=True)) / 2
    assert margin_mse_loss(LOGITS, TEACHER).item() == pytest.approx(mse, rel=1e-6)
    assert kl_distill_loss(TEACHER, TEACHER).item() == pytest.approx(0.0, abs=1e-7)
    assert kl_distill_loss(LOGITS, TEACHER).item() > 0.05


@pytest.mark.parametrize("name", ["listwise", "ranknet", "margin-mse", "kl"])
def test_ranking_losses_ignore_a_uniform_shift_bce_does_not(name: str) -> None:
    losses = {"listwise": lambda x: listwise_loss(x), "ranknet": ranknet_loss,
              "margin-mse": lambda x: margin_mse_loss(x, TEACHER),
              "kl": lambda x: kl_distill_loss(x, TEACHER)}
    assert losses[name](LOGITS + 5.0).item() == pytest.approx(losses[name](LOGITS).item(),
                                                              rel=1e-5)
    assert bce_loss(LOGITS + 5.0).item() != pytest.approx(bce_loss(LOGITS).item(), rel=1e-3)


def test_combined_adds_the_calibration_term() -> None:
    plain = combined_loss(LOGITS, loss="listwise")
    calibrated = combined_loss(LOGITS, loss="listwise", bce_weight=0.5, offset=2.65)
    assert calibrated.item() == pytest.approx(plain.item() + 0.5 * bce_loss(LOGITS, 2.65).item())
    with pytest.raises(InvalidInputError, match="needs teacher scores"):
        combined_loss(LOGITS, loss="distill")
