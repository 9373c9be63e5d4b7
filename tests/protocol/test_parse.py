import pytest

from mmad.protocol.parse import (
    ParseMethod,
    parse_answer,
    parse_last_letter,
    parse_numbered_list,
    strip_thinking,
    upstream_parse,
)
from tests.protocol.parser_corpus import CORPUS, DEF, YN


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60
    assert sum(expected is None for _, _, expected in CORPUS) >= 8


@pytest.mark.parametrize(("reply", "options", "expected"), CORPUS)
def test_our_parser_on_the_corpus(reply: str, options: dict[str, str], expected: str | None) -> None:
    assert parse_answer(reply, options).letter == expected


def test_upstream_parser_differs_where_expected() -> None:
    ours = sum(parse_answer(r, o).letter == e for r, o, e in CORPUS)
    theirs = sum(upstream_parse(r, o).letter == e for r, o, e in CORPUS)
    assert ours == len(CORPUS)
    assert theirs < ours
    # The article "A" in prose wins the official regex:
    assert upstream_parse("A crack is visible on the rim.", DEF).letter == "A"
    # and difflib with cutoff 0 always returns some option, even for a refusal:
    assert upstream_parse("I'm sorry, I cannot help.", YN).method is ParseMethod.UPSTREAM_DIFFLIB
    assert upstream_parse("I'm sorry, I cannot help.").letter is None
    assert upstream_parse("A or B? I pick B, not A", YN, first=True).letter == "A"


def test_refusals_are_marked() -> None:
    assert parse_answer("I'm sorry, but I can't help with that.", YN).refusal
    assert not parse_answer("The image is too blurry to tell.", DEF).refusal


def test_thinking_is_removed() -> None:
    assert strip_thinking("<think>A B C</think>D").strip() == "D"
    assert strip_thinking("reasoning without an opening tag</think> B").strip() == "B"
    assert strip_thinking("<think>never closed A B C").strip() == ""


def test_numbered_lists() -> None:
    reply = "1. Answer: A.\n2. Answer: C.\n3. Answer: B.\n4. **D**"
    parsed = parse_numbered_list(reply, [YN, DEF, DEF, DEF])
    assert [p.letter for p in parsed] == ["A", "C", "B", "D"]
    partial = parse_numbered_list("1. A\n3. B", [YN, DEF, DEF])
    assert [p.letter for p in partial] == ["A", None, "B"]
    assert [p.letter for p in parse_numbered_list("A, D, B", [YN, DEF, DEF])] == ["A", "D", "B"]
    assert [p.letter for p in parse_numbered_list("Question 1: B\nQuestion 2: A", [YN, DEF])] == ["B", "A"]


def test_last_letter_rule_of_the_cumulative_variant() -> None:
    assert parse_last_letter("1. Answer: A.\n2. Answer: B.\n3. Answer: D.", DEF).letter == "D"


def test_upstream_list_rule_of_the_gemini_script() -> None:
    """gemini_query.py: every standalone letter of the reply, in order; a count mismatch drops the image."""
    from mmad.protocol.parse import upstream_parse_list

    assert [p.letter for p in upstream_parse_list("1. Answer: B.\n2. Answer: A.\n3. Answer: C.", 3)] == ["B", "A", "C"]
    # "A" the article counts too, as in the script: four letters for three questions drop them all
    assert [p.letter for p in upstream_parse_list("A crack. 1. B 2. A 3. C", 3)] == [None, None, None]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("Answer: B", "B"), ("B", "B"), ("B. Yes.", "B"), ("1. Answer: A.", "A"), ("1. B", "B"), ("**A**", "A")],
)
def test_a_one_question_list_parses_like_a_per_question_reply(reply: str, expected: str) -> None:
    """Issue 21 item 2: --protocol per-image sends an image with one asked question (--subtask AD) as a
    one-item list; its reply is read as a per-question reply is, not lost as unparsed."""
    [parsed] = parse_numbered_list(reply, [YN])
    assert parsed.letter == expected
    assert parsed.letter == parse_answer(reply, YN).letter
