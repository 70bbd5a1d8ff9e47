"""m0rank.terms: the index terms shared by the offline model and the eval harness's BM25."""

from __future__ import annotations

import pytest

from m0rank.terms import cjk_share, decompound, detect_language, index_terms


def test_chinese_bigrams_and_jieba_words() -> None:
    assert index_terms("埃菲尔铁塔", chinese="bigrams") == ["埃菲", "菲尔", "尔铁", "铁塔"]
    assert index_terms("埃菲尔铁塔高三百米", chinese="jieba")[0] == "埃菲尔铁塔"


def test_german_is_stemmed_folded_and_decompounded_with_a_lexicon() -> None:
    assert index_terms("Die Größe der Häuser", "german") == ["die", "gross", "der", "haus"]
    lexicon = {"wass", "versorg"}
    terms = index_terms("Wasserversorgung", "german", lexicon=lexicon)
    assert terms[0] == "wasserversorg" and terms[1:] == ["wass", "versorg"]


def test_decompound_drops_a_linking_s() -> None:
    assert decompound("arbeitsplatz", {"arbeit", "platz"}) == ["arbeit", "platz"]
    assert decompound("arbeitsplatz", {"platz"}) == []


def test_english_is_stemmed() -> None:
    assert index_terms("watering plants", "english") == ["water", "plant"]


def test_language_and_script_detection() -> None:
    assert detect_language(["埃菲尔铁塔高330米。"]) == "chinese"
    assert detect_language(["Wie hoch ist der Eiffelturm?"]) == "german"
    assert detect_language(["How tall is the tower?"]) == "english"
    assert cjk_share(["abc"]) == 0.0 and cjk_share(["铁塔"]) == 1.0


@pytest.mark.parametrize(("text", "language"), [
    ("Was ist DECnet?", "german"),  # "was" used to count as English
    ("In welchem Jahr starb Tesla?", "german"),  # and "in"
    ("Wo wurde Friedrich Ratzel geboren?", "german"),
    ("Who was Nikola Tesla?", "english"),
    ("Tesla was born in Smiljan.", "english"),  # "was" counts for neither language
    ("He was a physicist.", "english"),
    ("War broke out in 1914.", "english"),
    ("When was the tower built?", "english"),
    ("In which year did Tesla die?", "english")])
def test_short_questions_are_told_apart_by_their_question_words(text: str,
                                                                 language: str) -> None:
    assert detect_language([text]) == language


def test_jieba_plus_bigrams_keeps_both_words_and_bigrams() -> None:
    terms = index_terms("埃菲尔铁塔", chinese="jieba+bigrams")
    assert terms == ["埃菲尔铁塔", "埃菲", "菲尔", "尔铁", "铁塔"]


def test_unknown_chinese_mode_names_the_argument_and_value() -> None:
    import pytest

    from m0rank.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="chinese must be one of jieba, bigrams, "
                                                "jieba\\+bigrams, got 'words'"):
        index_terms("铁塔", chinese="words")
