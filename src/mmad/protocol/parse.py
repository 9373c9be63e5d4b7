"""Answer extraction: from a model's reply to an option letter, saying how it was found.

Our parser works in layers and stops at the first that answers: ``<think>`` blocks are removed,
then explicit answer forms ("Answer: X", "The answer is X", "(X)", "**X**", "答案：X"; a lower-case
letter counts where nothing but punctuation follows it, so "answer: c" is C but "the answer is a
defect" is not A), then a bare letter ("B", "b."), then a letter that ends the reply after a
sentence ("…there is a defect. A"), then an option's text (exact, normalised, or the only option
text the reply contains), then an option's meaning (a yes/no question answered in words such as
"the object is defect-free"; the one option whose words the reply restates). A refusal is
recognised as such. What none of these finds stays unparsed: it is never guessed.

``upstream_parse`` is the official scripts' parser for comparison: the last standalone capital
A-E anywhere in the reply, then ``difflib.get_close_matches(reply, option texts, cutoff=0)``,
which always returns some option.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import StrEnum


class ParseMethod(StrEnum):
    """How a letter was found (recorded per answer)."""

    EXPLICIT = "explicit"
    BARE_LETTER = "bare-letter"
    OPTION_TEXT = "option-text"
    LIST = "numbered-list"
    LAST_LETTER = "last-letter"
    JUDGE = "judge"
    TRAILING_LETTER = "trailing-letter"
    OPTION_MEANING = "option-meaning"
    UPSTREAM_REGEX = "upstream-regex"
    UPSTREAM_DIFFLIB = "upstream-difflib"
    UPSTREAM_DROPPED = "upstream-dropped-image"
    LIKELIHOOD = "likelihood"


@dataclass(frozen=True)
class Parsed:
    """A letter (or None) and how it was found; ``refusal`` marks a declined answer."""

    letter: str | None
    method: ParseMethod | None = None
    refusal: bool = False


_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_L = r"([A-Ea-e])"
_EXPLICIT = [
    re.compile(rf"(?:final\s+)?answer\s*(?:is|:|：|=)?\s*(?:option\s*)?[\(\[\*\s]*{_L}\b(?![\w'’])", re.IGNORECASE),
    re.compile(
        rf"(?:correct|right|best)\s+(?:answer|option|choice)\s+(?:is|would be|:)?\s*[\(\[\*\s]*{_L}\b(?![\w'’])",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?:option|choice)\s+[\(\[\*]*{_L}\b(?![\w'’])\s*(?:is|would be)?\s*(?:correct|right|the answer)",
        re.IGNORECASE,
    ),
    re.compile(r"(?<![\w'’])([A-E])\s+is\s+(?:the\s+)?(?:correct|right|answer)\b"),
    re.compile(
        rf"(?:I\s+(?:would\s+)?(?:choose|pick|select|go with))\s+(?:option\s+)?[\(\[\*\s]*{_L}\b(?![\w'’])",
        re.IGNORECASE,
    ),
    re.compile(rf"(?:答案|选项|答)\s*(?:是|为|：|:)?\s*[\(（\[\*\s]*{_L}"),
    re.compile(rf"选\s*{_L}"),
    re.compile(r"\*\*\s*\(?([A-E])\)?[\.:]?\s*\*\*"),
    re.compile(r"^\s*\(?([A-E])\)\s*", re.MULTILINE),
]
_BARE = re.compile(r"^\s*[\(\[\*\"'“]*([A-E])[\)\]\*\"'”]*\s*(?:[\.:,：、。]\s*.*)?$", re.DOTALL)
_BARE_LOWER = re.compile(r"^\s*[\(\[\*\"'“]*([a-e])[\)\]\*\"'”]*[\.:]?\s*$")
# A capital letter alone at the very end, after a sentence: "... so there is a defect. A"
_TRAILING = re.compile(r"[\.!?。:：\n]\s*[\(\[\*]*([A-E])[\)\]\*]*\.?\s*$")
# After a lower-case letter only punctuation or the end may follow ("answer: c."), never a word.
_LOWER_END = re.compile(r"\s*(?:[\.\)\]\*,;:!。]|$)")
_REFUSAL = re.compile(
    r"\b(?:I\s*(?:'m|am)\s+(?:sorry|unable|not able)|I\s+(?:can(?:no|')t|cannot|won't)\s+(?:help|assist|"
    r"determine|tell|answer|provide|see|view|analy[sz]e|identify)|unable to (?:determine|answer|view|see|analy[sz]e)|"
    r"as an AI|cannot be determined)|无法(?:判断|确定|回答)|抱歉",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[^\w\s]")


def strip_thinking(reply: str) -> str:
    """The reply without ``<think>...</think>`` blocks (an unclosed one runs to the end)."""
    if "</think>" in reply and "<think>" not in reply:
        return reply.split("</think>", 1)[1]
    return _THINK.sub(" ", reply)


def _normalise(value: str) -> str:
    return " ".join(_WORDS.sub(" ", value.lower()).split())


def _by_option_text(reply: str, options: dict[str, str]) -> str | None:
    norm_reply = _normalise(reply)
    if not norm_reply:
        return None
    normalised = {letter: _normalise(option) for letter, option in options.items()}
    exact = [letter for letter, option in normalised.items() if option and option == norm_reply]
    if len(exact) == 1:
        return exact[0]
    contained = [
        letter
        for letter, option in normalised.items()
        if option and re.search(rf"(?<!\w){re.escape(option)}(?!\w)", norm_reply)
    ]
    # Only a longest-match winner counts, and only when no other option text also appears.
    if len(contained) == 1:
        return contained[0]
    return None


def _strip_echoed_options(body: str, options: dict[str, str]) -> str:
    """Drop the option list when the reply repeats it ("A. Yes\nB. No\n\nB")."""
    echoed = {_normalise(f"{letter} {text}") for letter, text in options.items()}
    lines = body.split("\n")
    kept = [line for line in lines if _normalise(line) not in echoed]
    return "\n".join(kept).strip() if len(lines) - len(kept) >= 2 else body


def _explicit_letters(pattern: re.Pattern[str], body: str) -> list[str]:
    letters = []
    for match in pattern.finditer(body):
        letter = match.group(1)
        if letter.islower() and not _LOWER_END.match(body, match.end(1)):
            continue  # "the answer is a defect": the article, not option A
        letters.append(letter.upper())
    return letters


_YES = re.compile(
    r"\b(?:there\s+(?:is|are)\s+(?:a|an|some|one|two|several|visible|clear|obvious)\b(?!\s+no\b)[^.]*?"
    r"\b(?:defects?|anomal(?:y|ies)|flaws?|damage|dents?|scratch(?:es)?|cracks?|holes?|stains?|breaks?|chips?|"
    r"tears?|contamination|spots?|missing)|(?:is|are|looks|appears)\s+(?:clearly\s+)?(?:defective|damaged|"
    r"broken|anomalous|abnormal)|has\s+(?:a|an)\s+(?:defect|flaw|anomaly))\b",
    re.IGNORECASE,
)
_NO = re.compile(
    r"\b(?:no\s+(?:visible\s+|obvious\s+|apparent\s+)?(?:defects?|anomal(?:y|ies)|flaws?|damage)|"
    r"(?:defect|flaw|anomaly)[- ]free|free\s+(?:of|from)\s+(?:any\s+)?(?:defects?|flaws?|anomal(?:y|ies))|"
    r"(?:is|are|looks|appears)\s+(?:to\s+be\s+)?(?:normal|flawless|intact|perfect|fine|undamaged|in\s+good\s+condition)|"
    r"(?:does|do)\s+not\s+(?:have|show|contain)\s+(?:any\s+)?(?:defects?|flaws?|anomal(?:y|ies)))\b",
    re.IGNORECASE,
)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "on",
        "in",
        "at",
        "to",
        "is",
        "are",
        "it",
        "its",
        "this",
        "that",
        "and",
        "or",
        "with",
        "from",
        "for",
        "by",
        "as",
        "be",
        "may",
        "can",
        "will",
        "has",
        "have",
        "there",
        "object",
        "product",
        "image",
    ]
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "e"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _content_words(text: str) -> set[str]:
    return {_stem(w) for w in _normalise(text).split() if len(w) > 2 and w not in _STOP}


def _by_meaning(reply: str, options: dict[str, str]) -> str | None:
    """An option the reply restates in other words: yes/no in words, or the one option whose words it repeats."""
    normalised = {letter: _normalise(text) for letter, text in options.items()}
    yes = [k for k, v in normalised.items() if v == "yes"]
    no = [k for k, v in normalised.items() if v == "no"]
    if len(options) == 2 and len(yes) == 1 and len(no) == 1:
        says_yes, says_no = bool(_YES.search(reply)), bool(_NO.search(reply))
        if says_yes != says_no:
            return yes[0] if says_yes else no[0]
        return None
    words = _content_words(reply)
    shares = {}
    for letter, text in options.items():
        wanted = _content_words(text)
        if len(wanted) >= 2:
            shares[letter] = len(wanted & words) / len(wanted)
    ranked = sorted(shares.items(), key=lambda kv: kv[1], reverse=True)
    if ranked and ranked[0][1] >= 0.75 and (len(ranked) == 1 or ranked[1][1] < 0.5):
        return ranked[0][0]
    return None


def parse_answer(reply: str, options: dict[str, str]) -> Parsed:
    """Our layered parser; only letters that are options are accepted."""
    body = _strip_echoed_options(strip_thinking(reply).strip(), options)
    valid = set(options)
    for pattern in _EXPLICIT:
        found = [m for m in _explicit_letters(pattern, body) if m in valid]
        if found:
            return Parsed(found[-1], ParseMethod.EXPLICIT)
    bare = _BARE.match(body) or _BARE_LOWER.match(body)
    if bare and bare.group(1).upper() in valid and len(body) <= 200:
        return Parsed(bare.group(1).upper(), ParseMethod.BARE_LETTER)
    trailing = _TRAILING.search(body)
    if trailing and trailing.group(1) in valid:
        return Parsed(trailing.group(1), ParseMethod.TRAILING_LETTER)
    letter = _by_option_text(body, options)
    if letter:
        return Parsed(letter, ParseMethod.OPTION_TEXT)
    if not _REFUSAL.search(body):
        letter = _by_meaning(body, options)
        if letter:
            return Parsed(letter, ParseMethod.OPTION_MEANING)
    standalone = {m for m in re.findall(r"(?<![\w'’])([A-E])(?![\w'’])", body) if m in valid}
    if len(standalone) == 1 and len(body) <= 40:
        return Parsed(standalone.pop(), ParseMethod.BARE_LETTER)
    return Parsed(None, refusal=bool(_REFUSAL.search(body)))


_UPSTREAM = re.compile(r"\b([A-E])\b")
# The official parsers: the last standalone letter (most scripts), the first (LLaVA's, Cambrian's).
UPSTREAM_PARSERS = frozenset({"upstream", "upstream-first"})


def upstream_parse(reply: str, options: dict[str, str] | None = None, *, first: bool = False) -> Parsed:
    """The official scripts' parser: last (LLaVA/Cambrian: first) standalone A-E, then difflib."""
    found = _UPSTREAM.findall(reply)
    if found:
        return Parsed(found[0] if first else found[-1], ParseMethod.UPSTREAM_REGEX)
    if options:
        match = difflib.get_close_matches(reply, list(options.values()), n=1, cutoff=0.0)
        if match:
            letter = next(k for k, v in options.items() if v == match[0])
            return Parsed(letter, ParseMethod.UPSTREAM_DIFFLIB)
    return Parsed(None)


def upstream_parse_list(reply: str, count: int) -> list[Parsed]:
    """Gemini/gemini_query.py's rule for one reply to several questions: every standalone A-E of
    the reply, in order, one per question. When their number differs from ``count`` the script
    drops the whole image, question 1 included: every question is left without a letter and marked
    ``UPSTREAM_DROPPED``, so that the upstream scoring policy leaves the whole image out."""
    found = _UPSTREAM.findall(reply)
    if len(found) != count:
        return [Parsed(None, ParseMethod.UPSTREAM_DROPPED) for _ in range(count)]
    return [Parsed(letter, ParseMethod.UPSTREAM_REGEX) for letter in found]


def parse_last_letter(reply: str, options: dict[str, str]) -> Parsed:
    """The cumulative and Gemini variants' rule: our parser on the text after the last question."""
    parsed = parse_answer(reply, options)
    if parsed.letter:
        return parsed
    found = [m for m in _UPSTREAM.findall(strip_thinking(reply)) if m in options]
    return Parsed(found[-1], ParseMethod.LAST_LETTER) if found else parsed


_ITEM = re.compile(
    r"^\s*(?:\*\*)?(?:Question\s*)?(\d{1,3})\s*[\.\):：]\s*(?:\*\*)?\s*(.*)$", re.IGNORECASE | re.MULTILINE
)


def parse_numbered_list(reply: str, options_per_item: list[dict[str, str]]) -> list[Parsed]:
    """Answers given as a numbered list ("1. Answer: B.") for a request that held several questions.

    A request that held one question (an image with one asked question under ``per-image``) is
    answered like a per-question request: "Answer: B", "B" or "B. Yes." count, numbered or not.
    """
    body = strip_thinking(reply)
    if len(options_per_item) == 1:
        return [parse_answer(reply, options_per_item[0])]
    answers: dict[int, Parsed] = {}
    for match in _ITEM.finditer(body):
        number = int(match.group(1))
        if 1 <= number <= len(options_per_item) and number not in answers:
            parsed = parse_answer(match.group(2), options_per_item[number - 1])
            if parsed.letter:
                answers[number] = Parsed(parsed.letter, ParseMethod.LIST)
    if not answers and len(options_per_item) > 1:
        # No numbers: a bare sequence of letters, one per question, in order.
        letters = re.findall(r"(?<![\w'’])([A-E])(?![\w'’])", body)
        if len(letters) == len(options_per_item):
            return [
                Parsed(letter, ParseMethod.LIST) if letter in opts else Parsed(None)
                for letter, opts in zip(letters, options_per_item, strict=True)
            ]
    refusal = bool(_REFUSAL.search(body)) and not answers
    return [answers.get(i + 1, Parsed(None, refusal=refusal)) for i in range(len(options_per_item))]
