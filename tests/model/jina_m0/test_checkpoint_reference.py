"""Regression against the reference outputs published with jina-reranker-m0 (spec §1.11).

Runs only with ``-m checkpoint`` and ``M0RANK_CHECKPOINT`` pointing at a real download
(``huggingface-cli download jinaai/jina-reranker-m0 --local-dir ...``). The image cases also
need the sample images; set ``M0RANK_SAMPLES`` to a folder holding ``handelsblatt-preview.png``,
``paper-11.png``, ``wired-preview.png`` and ``using-deepseek-r1-reasoning-model-in-deepsearch.webp``
(from github.com/jina-ai/multimodal-reranker-test and jina.ai/blog-banner).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.checkpoint

TOLERANCE = 0.01
QUERY = "slm markdown"
TEXT_DOCS = [
    "We present ReaderLM-v2, a compact 1.5 billion parameter language model designed for efficient web content extraction. Our model processes documents up to 512K tokens, transforming messy HTML into clean Markdown or JSON formats with high accuracy -- making it an ideal tool for grounding large language models. The models effectiveness results from two key innovations: (1) a three-stage data synthesis pipeline that generates high quality, diverse training data by iteratively drafting, refining, and critiquing web content extraction; and (2) a unified training framework combining continuous pre-training with multi-objective optimization. Intensive evaluation demonstrates that ReaderLM-v2 outperforms GPT-4o-2024-08-06 and other larger models by 15-20% on carefully curated benchmarks, particularly excelling at documents exceeding 100K tokens, while maintaining significantly lower computational requirements.",
    "数据提取么？为什么不用正则啊，你用正则不就全解决了么？",
    "During the California Gold Rush, some merchants made more money selling supplies to miners than the miners made finding gold.",
    "Die wichtigsten Beiträge unserer Arbeit sind zweifach: Erstens führen wir eine neuartige dreistufige Datensynthese-Pipeline namens Draft-Refine-Critique ein, die durch iterative Verfeinerung hochwertige Trainingsdaten generiert; und zweitens schlagen wir eine umfassende Trainingsstrategie vor, die kontinuierliches Vortraining zur Längenerweiterung, überwachtes Feintuning mit spezialisierten Kontrollpunkten, direkte Präferenzoptimierung (DPO) und iteratives Self-Play-Tuning kombiniert. Um die weitere Forschung und Anwendung der strukturierten Inhaltsextraktion zu erleichtern, ist das Modell auf Hugging Face öffentlich verfügbar.",
]
IMAGE_NAMES = ["handelsblatt-preview.png", "paper-11.png", "wired-preview.png",
               "using-deepseek-r1-reasoning-model-in-deepsearch.webp"]


@pytest.fixture(scope="module")
def real_reranker():  # noqa: ANN201
    path = os.environ.get("M0RANK_CHECKPOINT")
    if not path:
        pytest.skip("set M0RANK_CHECKPOINT to a jina-reranker-m0 download")
    from m0rank import Reranker

    return Reranker.from_pretrained(path)


@pytest.fixture(scope="module")
def sample_images() -> list[str]:
    folder = os.environ.get("M0RANK_SAMPLES")
    if not folder or not all((Path(folder) / n).exists() for n in IMAGE_NAMES):
        pytest.skip("set M0RANK_SAMPLES to a folder with the reference sample images")
    return [str(Path(folder) / name) for name in IMAGE_NAMES]


def test_text_query_text_documents(real_reranker) -> None:
    scores = real_reranker.compute_score([[QUERY, d] for d in TEXT_DOCS], max_length=1024)
    np.testing.assert_allclose(scores, [0.6839263439178467, 0.4432148039340973,
                                        0.5904013514518738, 0.45481112599372864], atol=TOLERANCE)


def test_text_query_image_documents(real_reranker, sample_images) -> None:
    scores = real_reranker.compute_score([[QUERY, d] for d in sample_images], max_length=2048,
                                         doc_type="image")
    np.testing.assert_allclose(scores, [0.49375027418136597, 0.7889736890792847,
                                        0.47813892364501953, 0.5210812091827393], atol=TOLERANCE)


def test_image_query_text_documents(real_reranker, sample_images) -> None:
    scores = real_reranker.compute_score([[sample_images[1], d] for d in TEXT_DOCS],
                                         max_length=2048, query_type="image", doc_type="text")
    np.testing.assert_allclose(scores, [0.98099285364151, 0.7701883316040039,
                                        0.5637142062187195, 0.9308615922927856], atol=TOLERANCE)


def test_image_query_image_documents(real_reranker, sample_images) -> None:
    scores = real_reranker.compute_score([[sample_images[1], d] for d in sample_images],
                                         max_length=2048, query_type="image", doc_type="image")
    np.testing.assert_allclose(scores, [0.6275860667228699, 0.9922324419021606,
                                        0.8090347051620483, 0.7941296100616455], atol=TOLERANCE)
