"""Cases of the v2 tests: check-set topics, the README's Eiffel Tower example, a photo."""

from __future__ import annotations

import numpy as np
from PIL import Image

TOPICS = ("ev", "sourdough", "bees", "coffee")  # the query is about TOPICS[0]

EIFFEL_QUERY_DE = "Wie hoch ist der Eiffelturm?"
EIFFEL_ZH = "埃菲尔铁塔高330米。"
BERLIN_DE = "Berlin ist die Hauptstadt von Deutschland und hat viele Museen."


def passages(language: str, topics: tuple[str, ...] = TOPICS) -> list[str]:
    """Passage ``a`` of each topic in ``language``."""
    from m0rank.testing.checkset import build_checkset

    docs = build_checkset(language).docs
    return [docs[f"{topic}-a"] for topic in topics]


def question(language: str, topic: str = TOPICS[0]) -> str:
    """The check set's question of ``topic`` in ``language``."""
    from m0rank.testing.checkset import build_checkset

    return build_checkset(language).queries[topic]


def synthetic_photo(size: tuple[int, int] = (480, 320)) -> Image.Image:
    """Smooth colour gradients plus sensor-like noise: photo statistics, no glyphs."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    base = np.stack([x / size[0], y / size[1], (x + y) / sum(size)], axis=-1) * 200 + 30
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))

# Held out from every fit (the language offsets are measured on the check set): a question
# about the Great Wall, its answer in each language, and irrelevant passages that share the
# question's language (and some of its words: China, longest).
GREAT_WALL_QUESTION = {"en": "How long is the Great Wall of China?",
                       "de": "Wie lang ist die Chinesische Mauer?",
                       "zh": "长城有多长？"}
GREAT_WALL_ANSWER = {
    "en": "The Great Wall of China stretches for more than 21,000 kilometres across northern "
          "China.",
    "de": "Die Chinesische Mauer erstreckt sich über mehr als 21.000 Kilometer durch den Norden "
          "Chinas.",
    "zh": "中国的长城绵延两万一千多公里，横跨中国北方。"}
GREAT_WALL_DISTRACTORS = {
    "en": ["The Yangtze is the longest river in China and flows into the East China Sea.",
           "Pandas mostly eat bamboo and spend many hours a day feeding.",
           "The Spring Festival is the most important traditional holiday in China.",
           "This restaurant is famous for its dumplings; on weekends there is often a queue."],
    "de": ["Der Rhein fließt durch mehrere Länder und mündet in die Nordsee.",
           "Pandas fressen vor allem Bambus und verbringen viele Stunden am Tag mit Fressen.",
           "Das Oktoberfest in München zieht jedes Jahr Millionen Besucher an.",
           "Dieses Restaurant ist für seine Knödel bekannt; am Wochenende muss man oft warten."],
    "zh": ["长江是中国最长的河流，流经十一个省份，最后注入东海。",
           "熊猫主要吃竹子，每天要花十几个小时进食。",
           "春节是中国最重要的传统节日，家人会团聚吃年夜饭。",
           "这家餐厅的饺子很有名，周末常常需要排队。"]}
