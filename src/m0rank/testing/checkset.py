"""A small multilingual check set (English, German, Chinese), as text and as rendered pages.

Twelve everyday topics, written for m0rank (no external source), each in three languages with
one question and two relevant passages: ``a`` answers in the question's words, ``b`` talks
about the same thing in other words (weaker lexical overlap). For a query, the 22 passages of
the other eleven topics in the same language are the irrelevant ones, so a random ranking of
the 24 candidates scores nDCG@10 of about 0.23.

Modalities (see :func:`checkset_run_inputs`): ``text`` (text query, text passages),
``image`` (text query, passages rendered as page images with Noto fonts), ``image-query``
(the question rendered as a slide, text passages) and ``mixed`` (text query, each passage as
an image of its first half plus the second half as text).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from m0rank.testing.pages import render_page

__all__ = ["LANGUAGES", "MODALITIES", "CheckSet", "build_checkset", "checkset_run_inputs",
           "random_ndcg_at_10"]

LANGUAGES = ("en", "de", "zh")
MODALITIES = ("text", "image", "image-query", "mixed")

# topic -> language -> (question, passage a, passage b)
_TOPICS: dict[str, dict[str, tuple[str, str, str]]] = {
    "photosynthesis": {
        "en": ("How do plants turn sunlight into energy?",
               "Plants turn sunlight into chemical energy through photosynthesis. Chlorophyll in "
               "the leaves absorbs light, and the plant uses that energy to build sugar from "
               "carbon dioxide and water, releasing oxygen.",
               "Green leaves contain chloroplasts. Inside them, light drives reactions that fix "
               "carbon from the air into glucose, which the organism later burns for growth."),
        "de": ("Wie wandeln Pflanzen Sonnenlicht in Energie um?",
               "Pflanzen wandeln Sonnenlicht durch Photosynthese in chemische Energie um. Das "
               "Chlorophyll in den Blättern nimmt Licht auf, und die Pflanze baut mit dieser "
               "Energie Zucker aus Kohlendioxid und Wasser auf und gibt Sauerstoff ab.",
               "Grüne Blätter enthalten Chloroplasten. Darin treiben Lichtreaktionen die "
               "Bindung von Kohlenstoff aus der Luft zu Glukose an, die später das Wachstum "
               "versorgt."),
        "zh": ("植物如何把阳光转化为能量？",
               "植物通过光合作用把阳光转化为化学能量。叶子里的叶绿素吸收光，植物利用这些能量把二氧化碳"
               "和水合成糖，同时释放氧气。",
               "绿色的叶片含有叶绿体。在叶绿体内部，光反应把空气中的碳固定成葡萄糖，之后为生长提供养分。"),
    },
    "cold": {
        "en": ("What helps against a common cold?",
               "Against a common cold, rest and plenty of fluids help most. Antibiotics do not "
               "work against the cold virus; the symptoms usually pass within a week.",
               "A stuffy nose and sore throat from a viral infection fade on their own after a "
               "few days. Sleep, warm tea and honey can ease the discomfort meanwhile."),
        "de": ("Was hilft gegen eine Erkältung?",
               "Gegen eine Erkältung helfen vor allem Ruhe und viel Flüssigkeit. Antibiotika "
               "wirken nicht gegen Erkältungsviren; die Beschwerden vergehen meist innerhalb "
               "einer Woche.",
               "Schnupfen und Halsschmerzen durch einen Virusinfekt klingen nach einigen Tagen "
               "von selbst ab. Schlaf, warmer Tee und Honig lindern die Beschwerden."),
        "zh": ("感冒了怎么办？吃什么有帮助？",
               "感冒时最有帮助的是休息和多喝水。抗生素对感冒病毒无效，症状通常在一周内消失。",
               "病毒引起的鼻塞和喉咙痛几天后会自行缓解。睡眠、热茶和蜂蜜可以减轻不适。"),
    },
    "train": {
        "en": ("Why is my train delayed and can I get a refund?",
               "Trains are often delayed by signal failures, construction work or staff "
               "shortages. If your train is more than one hour late, you can claim a partial "
               "refund of the ticket price.",
               "Rail passengers who arrive sixty minutes behind schedule are entitled to "
               "compensation; fill in the passenger rights form at the station."),
        "de": ("Warum hat mein Zug Verspätung und bekomme ich Geld zurück?",
               "Züge haben oft Verspätung wegen Signalstörungen, Bauarbeiten oder "
               "Personalmangel. Ist der Zug mehr als eine Stunde zu spät, bekommen Sie einen "
               "Teil des Fahrpreises zurück.",
               "Bahnreisende, die sechzig Minuten nach Fahrplan ankommen, haben Anspruch auf "
               "Entschädigung; füllen Sie das Fahrgastrechte-Formular am Bahnhof aus."),
        "zh": ("火车为什么晚点？晚点可以退票吗？",
               "火车晚点常见的原因是信号故障、施工或人员不足。如果火车晚点超过一小时，可以申请退还部分票款。",
               "旅客到站时间比时刻表晚六十分钟以上，有权获得补偿，可以在车站填写乘客权益表格。"),
    },
    "sourdough": {
        "en": ("How do I bake sourdough bread at home?",
               "To bake sourdough bread at home, mix flour, water, salt and an active "
               "sourdough starter, let the dough rise for several hours, then bake it in a hot "
               "oven at about 250 degrees.",
               "A wild yeast culture leavens the loaf. After a long, slow fermentation the "
               "dough goes into a preheated Dutch oven until the crust turns dark brown."),
        "de": ("Wie backe ich zu Hause Sauerteigbrot?",
               "Um zu Hause Sauerteigbrot zu backen, mischen Sie Mehl, Wasser, Salz und aktiven "
               "Sauerteig, lassen den Teig einige Stunden gehen und backen ihn dann im heißen "
               "Ofen bei etwa 250 Grad.",
               "Wilde Hefen lockern den Laib. Nach langer, langsamer Gärung kommt der Teig in "
               "einen vorgeheizten Gusseisentopf, bis die Kruste dunkelbraun ist."),
        "zh": ("在家怎么烤酸面包？",
               "在家烤酸面包，要把面粉、水、盐和活跃的酸面种混合，让面团发酵几个小时，然后放进大约二百五十度的"
               "热烤箱里烘烤。",
               "野生酵母让面团膨胀。经过长时间的慢发酵后，把面团放入预热的铸铁锅，直到外皮变成深褐色。"),
    },
    "ev": {
        "en": ("Why does an electric car have less range in winter?",
               "An electric car has less range in winter because the cold battery delivers "
               "less energy and heating the cabin draws power. Range can drop by twenty to "
               "thirty percent.",
               "Low temperatures slow the chemistry inside lithium-ion cells, and warming the "
               "interior uses electricity, so the vehicle travels fewer kilometres per charge."),
        "de": ("Warum hat ein Elektroauto im Winter weniger Reichweite?",
               "Ein Elektroauto hat im Winter weniger Reichweite, weil die kalte Batterie "
               "weniger Energie liefert und die Heizung des Innenraums Strom verbraucht. Die "
               "Reichweite kann um zwanzig bis dreißig Prozent sinken.",
               "Niedrige Temperaturen bremsen die Chemie in Lithium-Ionen-Zellen, und das "
               "Aufwärmen des Innenraums kostet Strom, also fährt das Fahrzeug weniger "
               "Kilometer pro Ladung."),
        "zh": ("电动汽车为什么冬天续航变短？",
               "电动汽车冬天续航变短，是因为低温下电池能放出的能量减少，而且车内暖气也要耗电。续航可能下降百分之"
               "二十到三十。",
               "低温会减慢锂离子电芯内部的化学反应，给车厢加热也要用电，所以每次充电能跑的公里数更少。"),
    },
    "eclipse": {
        "en": ("What happens during a total solar eclipse?",
               "During a total solar eclipse the Moon passes between the Earth and the Sun and "
               "completely covers the Sun. The sky darkens and the solar corona becomes "
               "visible.",
               "For a few minutes day turns to dusk, stars appear, and a pale glowing ring of "
               "plasma surrounds the black lunar disk."),
        "de": ("Was passiert bei einer totalen Sonnenfinsternis?",
               "Bei einer totalen Sonnenfinsternis schiebt sich der Mond zwischen Erde und "
               "Sonne und verdeckt die Sonne vollständig. Der Himmel wird dunkel und die "
               "Sonnenkorona wird sichtbar.",
               "Für einige Minuten wird der Tag zur Dämmerung, Sterne erscheinen, und ein "
               "blasser leuchtender Plasmaring umgibt die schwarze Mondscheibe."),
        "zh": ("日全食发生时会出现什么现象？",
               "日全食发生时，月球运行到地球和太阳之间，完全遮住太阳。天空变暗，太阳的日冕变得可见。",
               "在几分钟内白天变得像黄昏，星星出现，一圈淡淡发光的等离子体环绕着黑色的月面。"),
    },
    "rent": {
        "en": ("Can my landlord raise the rent whenever he wants?",
               "A landlord cannot raise the rent whenever he wants. Rent increases must be "
               "announced in writing, and in many cities they are capped by law.",
               "Tenants are protected: the lease sets how often the monthly payment may go up, "
               "and notice has to be given months in advance."),
        "de": ("Darf mein Vermieter die Miete jederzeit erhöhen?",
               "Ein Vermieter darf die Miete nicht jederzeit erhöhen. Mieterhöhungen müssen "
               "schriftlich angekündigt werden und sind in vielen Städten gesetzlich begrenzt.",
               "Mieter sind geschützt: Der Vertrag legt fest, wie oft die monatliche Zahlung "
               "steigen darf, und Änderungen müssen Monate vorher mitgeteilt werden."),
        "zh": ("房东可以随时涨房租吗？",
               "房东不能随时涨房租。涨租必须提前书面通知，而且在很多城市，房租涨幅受法律限制。",
               "租客受到保护：租赁合同规定了月付金额多久可以上调一次，变更需要提前几个月告知。"),
    },
    "coffee": {
        "en": ("Is drinking coffee every day bad for your health?",
               "Drinking coffee every day is not bad for the health of most adults. Up to four "
               "cups a day is considered safe; too much caffeine can cause sleep problems and "
               "a racing heart.",
               "Moderate consumption of the brewed beans is linked to a lower risk of some "
               "diseases, although pregnant women should limit their intake."),
        "de": ("Ist es ungesund, jeden Tag Kaffee zu trinken?",
               "Jeden Tag Kaffee zu trinken ist für die meisten Erwachsenen nicht ungesund. "
               "Bis zu vier Tassen am Tag gelten als unbedenklich; zu viel Koffein kann "
               "Schlafprobleme und Herzrasen verursachen.",
               "Mäßiger Genuss des Bohnengetränks geht mit einem geringeren Risiko für einige "
               "Krankheiten einher, Schwangere sollten die Menge aber begrenzen."),
        "zh": ("每天喝咖啡对健康有害吗？",
               "对大多数成年人来说，每天喝咖啡对健康无害。每天四杯以内被认为是安全的；咖啡因过多会导致失眠和心跳"
               "加快。",
               "适量饮用这种由烘焙豆子冲泡的饮料，与某些疾病风险降低有关，但孕妇应当限制摄入。"),
    },
    "python": {
        "en": ("What is the best way to learn Python programming?",
               "The best way to learn Python programming is to write small programs every day. "
               "Start with variables, loops and functions, then build a project that solves a "
               "real problem.",
               "Beginners progress fastest by coding regularly: practise the basics, read other "
               "people's scripts and finish one useful tool of your own."),
        "de": ("Wie lernt man am besten Python-Programmierung?",
               "Am besten lernt man Python-Programmierung, indem man jeden Tag kleine Programme "
               "schreibt. Beginnen Sie mit Variablen, Schleifen und Funktionen und bauen Sie "
               "dann ein Projekt, das ein echtes Problem löst.",
               "Einsteiger kommen am schnellsten voran, wenn sie regelmäßig coden: Grundlagen "
               "üben, fremde Skripte lesen und ein eigenes nützliches Werkzeug fertigstellen."),
        "zh": ("学习Python编程最好的方法是什么？",
               "学习Python编程最好的方法是每天写小程序。先学变量、循环和函数，然后做一个解决实际问题的项目。",
               "初学者进步最快的办法是经常写代码：练习基础知识，阅读别人的脚本，完成一个自己有用的小工具。"),
    },
    "marathon": {
        "en": ("How should I train for my first marathon?",
               "To train for your first marathon, run four times a week for about four months "
               "and slowly increase your long run to thirty kilometres. Rest days prevent "
               "injuries.",
               "Build endurance gradually over sixteen weeks, with one long slow jog each "
               "weekend and easy recovery days between harder sessions."),
        "de": ("Wie trainiere ich für meinen ersten Marathon?",
               "Um für Ihren ersten Marathon zu trainieren, laufen Sie etwa vier Monate lang "
               "viermal pro Woche und steigern den langen Lauf langsam auf dreißig Kilometer. "
               "Ruhetage verhindern Verletzungen.",
               "Bauen Sie die Ausdauer über sechzehn Wochen schrittweise auf, mit einer langen "
               "ruhigen Einheit am Wochenende und lockeren Erholungstagen dazwischen."),
        "zh": ("第一次跑马拉松应该怎么训练？",
               "为第一次马拉松训练，大约四个月里每周跑四次，把长距离跑慢慢增加到三十公里。休息日可以防止受伤。",
               "用十六周时间逐步提高耐力，每个周末进行一次长距离慢跑，在高强度训练之间安排轻松的恢复日。"),
    },
    "bees": {
        "en": ("Why are honey bees dying?",
               "Honey bees are dying because of pesticides, parasites such as the varroa mite, "
               "and the loss of flowering meadows. Many beekeepers lose a third of their "
               "colonies each winter.",
               "Pollinator colonies collapse under chemical sprays, mites and a shrinking "
               "supply of wild blossoms, threatening fruit harvests."),
        "de": ("Warum sterben die Honigbienen?",
               "Honigbienen sterben wegen Pestiziden, Parasiten wie der Varroamilbe und dem "
               "Verlust blühender Wiesen. Viele Imker verlieren jeden Winter ein Drittel ihrer "
               "Völker.",
               "Bestäuberkolonien brechen unter Spritzmitteln, Milben und einem schrumpfenden "
               "Angebot an wilden Blüten zusammen, was die Obsternte bedroht."),
        "zh": ("蜜蜂为什么会大量死亡？",
               "蜜蜂大量死亡的原因是农药、瓦螨等寄生虫，以及开花草地的消失。很多养蜂人每年冬天会失去三分之一的"
               "蜂群。",
               "传粉昆虫的群落在化学喷剂、螨虫和野花减少的压力下崩溃，威胁到水果的收成。"),
    },
    "inflation": {
        "en": ("Why does the central bank raise interest rates when inflation is high?",
               "When inflation is high, the central bank raises interest rates so that "
               "borrowing becomes more expensive. People and companies spend less, and prices "
               "rise more slowly.",
               "Dearer credit cools demand in the economy; with fewer loans and less spending, "
               "the general price level stabilises over time."),
        "de": ("Warum erhöht die Zentralbank bei hoher Inflation die Zinsen?",
               "Bei hoher Inflation erhöht die Zentralbank die Zinsen, damit Kredite teurer "
               "werden. Menschen und Unternehmen geben weniger aus, und die Preise steigen "
               "langsamer.",
               "Teureres Geld bremst die Nachfrage in der Wirtschaft; mit weniger Darlehen und "
               "weniger Ausgaben stabilisiert sich das allgemeine Preisniveau mit der Zeit."),
        "zh": ("通货膨胀高的时候，央行为什么要加息？",
               "通货膨胀高的时候，央行会提高利率，让借钱变得更贵。个人和企业减少支出，物价上涨就会放缓。",
               "信贷成本上升会给经济降温；贷款和消费减少之后，整体价格水平会逐渐稳定下来。"),
    },
}


@dataclass(frozen=True)
class CheckSet:
    """One language of the check set.

    Attributes:
        language: ``"en"``, ``"de"`` or ``"zh"``.
        queries: Query id -> question.
        docs: Passage id (``"<topic>-a"``, ``"<topic>-b"``) -> passage text.
        qrels: Query id -> {relevant passage id: 1}.
    """

    language: str
    queries: dict[str, str]
    docs: dict[str, str]
    qrels: dict[str, dict[str, int]]


def build_checkset(language: str) -> CheckSet:
    """The check set of one language (text only; see :func:`checkset_run_inputs` for pages)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    queries, docs, qrels = {}, {}, {}
    for topic, versions in _TOPICS.items():
        question, passage_a, passage_b = versions[language]
        queries[topic] = question
        docs[f"{topic}-a"], docs[f"{topic}-b"] = passage_a, passage_b
        qrels[topic] = {f"{topic}-a": 1, f"{topic}-b": 1}
    return CheckSet(language=language, queries=queries, docs=docs, qrels=qrels)


def render_passage(text: str) -> Any:
    """A passage as a page screenshot (800 px wide, Noto 26 px)."""
    return render_page([text], width=800, font_size=26)


def render_slide(text: str) -> Any:
    """A question as a slide title (1000 px wide, Noto 40 px)."""
    return render_page([text], width=1000, font_size=40, margin=60)


def checkset_run_inputs(checkset: CheckSet, modality: str,
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Queries and documents in the m0rank input shapes for one modality.

    Returns:
        ``(queries, docs)``: id -> ``str`` / ``{"image": PIL}`` / ``{"text", "image"}``.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    queries: dict[str, Any] = dict(checkset.queries)
    docs: dict[str, Any] = dict(checkset.docs)
    if modality == "image":
        docs = {k: {"image": render_passage(v)} for k, v in docs.items()}
    elif modality == "image-query":
        queries = {k: {"image": render_slide(v)} for k, v in queries.items()}
    elif modality == "mixed":
        docs = {k: _mixed(v) for k, v in docs.items()}
    return queries, docs


def _mixed(text: str) -> dict[str, Any]:
    cut = len(text) // 2
    if " " in text:
        cut = text.rfind(" ", 0, cut) if text.rfind(" ", 0, cut) > 0 else cut
    return {"image": render_passage(text[:cut].strip()), "text": text[cut:].strip()}


def random_ndcg_at_10(num_docs: int, num_relevant: int, trials: int = 20000,
                      seed: int = 0) -> float:
    """Expected nDCG@10 of a uniformly random ranking (binary relevance), by simulation."""
    import math
    import random

    rng = random.Random(seed)
    ideal = sum(1 / math.log2(r + 2) for r in range(min(num_relevant, 10)))
    total = 0.0
    for _ in range(trials):
        ranks = rng.sample(range(num_docs), num_relevant)
        total += sum(1 / math.log2(r + 2) for r in ranks if r < 10) / ideal
    return total / trials
