"""One generator per subtask: MMAD-style questions with grounded answers and checked distractors.

Every question records how it was made (``mmad_source``), and options are placed so that each
subtask's answer letters stay balanced.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmad.builder import vocab
from mmad.builder.geometry import Appearance, Location, appearance_distractors, location_distractors
from mmad.data.schema import LETTERS

STEMS = {
    "Anomaly Detection": "Is there any defect in the object?",
    "Defect Classification": "There is a defect in the object. What is the type of the defect?",
    "Defect Localization": "There is a defect in the object. Where is the defect?",
    "Defect Description": "There is a defect in the object. What is the appearance of the defect?",
    "Defect Analysis": "There is a defect in the object. What is the potential effect of the defect?",
    "Object Classification": "What kind of product is in the image?",
    "Object Structure": "Which statement describes how this product is built?",
    "Object Details": "Which statement describes this product in its normal state?",
}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def near_duplicate(text: str, others: Sequence[str], threshold: float = 0.9) -> bool:
    """Whether a text equals, or almost equals (difflib ratio >= threshold), one of the others."""
    mine = _norm(text)
    for other in others:
        theirs = _norm(other)
        if mine == theirs:
            return True
        matcher = difflib.SequenceMatcher(None, mine, theirs, autojunk=False)
        # The cheap upper bounds rule most pairs out before the full comparison.
        if (
            matcher.real_quick_ratio() >= threshold
            and matcher.quick_ratio() >= threshold
            and (matcher.ratio() >= threshold)
        ):
            return True
    return False


def pick_distractors(correct: str, candidates: Sequence[str], n: int, rng: np.random.Generator) -> list[str] | None:
    """n candidates, in random order, none a near-duplicate of the answer or of each other."""
    chosen: list[str] = []
    for index in rng.permutation(len(candidates)):
        candidate = candidates[int(index)]
        if not near_duplicate(candidate, [correct, *chosen]):
            chosen.append(candidate)
        if len(chosen) == n:
            return chosen
    return None


@dataclass
class LetterBalancer:
    """Puts each answer on the letter its subtask has used least so far (ties broken by the seed)."""

    rng: np.random.Generator
    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def place(self, qtype: str, correct: str, distractors: list[str]) -> tuple[dict[str, str], str]:
        """Options keyed A, B, ... and the answer's letter."""
        letters = LETTERS[: 1 + len(distractors)]
        used = self.counts.setdefault(f"{qtype}/{len(letters)}", Counter())
        fewest = min(used[letter] for letter in letters)
        candidates = [letter for letter in letters if used[letter] == fewest]
        answer = candidates[int(self.rng.integers(len(candidates)))]
        used[answer] += 1
        rest = iter(distractors)
        options = {letter: correct if letter == answer else next(rest) for letter in letters}
        return options, answer


def make_qa(qtype: str, options: dict[str, str], answer: str, source: dict[str, Any]) -> dict[str, Any]:
    """A question in the official json shape, with its provenance."""
    return {
        "Question": STEMS[qtype],
        "Options": options,
        "Answer": answer,
        "type": qtype,
        "annotation": False,
        "mmad_source": source,
    }


def anomaly_question(is_normal: bool, balancer: LetterBalancer) -> dict[str, Any]:
    """Yes/No, from the label."""
    correct, other = ("No.", "Yes.") if is_normal else ("Yes.", "No.")
    options, answer = balancer.place("Anomaly Detection", correct, [other])
    return make_qa("Anomaly Detection", options, answer, {"generator": "label"})


@dataclass(frozen=True)
class Skip:
    """Why a generator made no question; counted in the build report."""

    reason: str


@dataclass(frozen=True)
class DefectTerm:
    """An option text of Defect Classification and its place in the defect taxonomy."""

    text: str
    node: str | None
    broad: bool

    def covers(self, other: DefectTerm) -> bool:
        """Whether this term is a broader one that also names the other ("A defect." covers "A dent.")."""
        return self.broad and self.node is not None and self.text != other.text and vocab.under(other.node, self.node)


def defect_term(folder: str, category: str = "") -> DefectTerm:
    """The option of a defect folder."""
    return DefectTerm(vocab.defect_name(folder, category), vocab.defect_node(folder), vocab.is_broad(folder))


GENERIC_TERMS = tuple(DefectTerm(f"{text}.", node, False) for text, node in vocab.GENERIC_DEFECTS.items())


def _compatible(candidate: DefectTerm, chosen: Sequence[DefectTerm]) -> bool:
    """No option may cover another: otherwise two options are right, or a broad answer gives itself away."""
    if near_duplicate(candidate.text, [t.text for t in chosen]):
        return False
    return not any(candidate.covers(t) or t.covers(candidate) for t in chosen)


def classification_question(
    defect: str,
    category_defects: Sequence[str],
    balancer: LetterBalancer,
    rng: np.random.Generator,
    category: str = "",
) -> dict[str, Any] | Skip:
    """The defect type's name among the category's other types, then generic defect names.

    No option covers another in the defect taxonomy (`vocab.BROAD_DEFECTS`): a broad answer such as
    VisA's "A defect." or LOCO's "A structural defect." cannot stand against "A dent.", and a broad
    distractor cannot stand against a specific answer it covers. When three such distractors do not
    exist the question is skipped with the reason.
    """
    answer = defect_term(defect, category)
    siblings = [defect_term(d, category) for d in category_defects if d != defect]
    chosen: list[DefectTerm] = []
    for pool in (siblings, GENERIC_TERMS):
        for index in rng.permutation(len(pool)):
            candidate = pool[int(index)]
            if len(chosen) < 3 and _compatible(candidate, [answer, *chosen]):
                chosen.append(candidate)
    if len(chosen) < 3:
        if answer.broad:
            return Skip("Defect Classification: the answer is a broad term covering the other defect names")
        return Skip("Defect Classification: fewer than 3 defect names distinct from the answer")
    options, letter = balancer.place("Defect Classification", answer.text, [t.text for t in chosen])
    return make_qa("Defect Classification", options, letter, {"generator": "label", "defect_type": defect})


def localization_question(
    location: Location, balancer: LetterBalancer, rng: np.random.Generator
) -> dict[str, Any] | None:
    """Where the mask lies on the product's 3×3 grid."""
    distractors = location_distractors(location, rng)
    if len(distractors) < 3:
        return None
    options, answer = balancer.place("Defect Localization", location.answer, distractors)
    return make_qa(
        "Defect Localization", options, answer, {"generator": "mask-grid", "cells": [list(c) for c in location.cells]}
    )


def description_question(
    appearance: Appearance, balancer: LetterBalancer, rng: np.random.Generator
) -> dict[str, Any] | None:
    """Size, shape and tone of the masked region."""
    correct = appearance.sentence()
    texts = [a.sentence() for a in appearance_distractors(appearance, rng, 12)]
    distractors = pick_distractors(correct, texts, 3, rng)
    if distractors is None:
        return None
    options, answer = balancer.place("Defect Description", correct, distractors)
    source = {
        "generator": "mask-appearance",
        "size": appearance.size,
        "shape": appearance.shape,
        "tone": appearance.tone,
        "count": appearance.count,
    }
    return make_qa("Defect Description", options, answer, source)


def analysis_question(defect: str, balancer: LetterBalancer, rng: np.random.Generator) -> dict[str, Any] | None:
    """A likely effect from the defect's family, against other families' effects and benign ones."""
    family = vocab.defect_family(defect)
    effects = vocab.FAMILY_EFFECTS[family]
    correct = effects[int(rng.integers(len(effects)))]
    others = [e for f, texts in vocab.FAMILY_EFFECTS.items() if f not in {family, "generic"} for e in texts]
    pool = [*vocab.BENIGN_EFFECTS, *others]
    distractors = pick_distractors(correct, pool, 3, rng)
    if distractors is None:
        return None
    options, answer = balancer.place("Defect Analysis", correct, distractors)
    return make_qa("Defect Analysis", options, answer, {"generator": "family-template", "family": family})


def object_question(
    category: str, categories: Sequence[str], balancer: LetterBalancer, rng: np.random.Generator
) -> dict[str, Any] | None:
    """The product's name among the dataset's other products and a product vocabulary."""
    correct = vocab.product_name(category)
    pool = [vocab.product_name(c) for c in categories if c != category]
    pool += [f"{p}." for p in vocab.GENERIC_PRODUCTS if not vocab.is_lookalike(p, correct)]
    distractors = pick_distractors(correct, pool, 3, rng)
    if distractors is None:
        return None
    options, answer = balancer.place("Object Classification", correct, distractors)
    return make_qa("Object Classification", options, answer, {"generator": "label", "category": category})


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_STRUCTURE = re.compile(r"\b(consist|compos|made of|built|parts?|components?|layer|edge|rim|structure)", re.I)


def knowledge_sentences(text: str) -> list[str]:
    """The usable sentences of a knowledge entry (its title and label stripped)."""
    body = re.sub(r"^\s*<[^>]*>\s*", "", text)
    body = re.sub(r"\bDescription:\s*", "", body)
    sentences = [s.strip(" -\n") for s in _SENTENCE.split(body.replace("\n", " "))]
    return [s for s in sentences if 6 <= len(s.split()) <= 40 and not s.endswith(":")]


def object_analysis_questions(
    category: str, knowledge: dict[str, dict[str, str]], balancer: LetterBalancer, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Structure and details statements from the category's normal description, against other categories'."""
    own = knowledge_sentences(knowledge.get(category, {}).get("good", ""))
    others = [
        s for c, entries in knowledge.items() if c != category for s in knowledge_sentences(entries.get("good", ""))
    ]
    questions = []
    structure = [s for s in own if _STRUCTURE.search(s)]
    details = [s for s in own if s not in structure]
    for qtype, pool in (("Object Structure", structure), ("Object Details", details)):
        if not pool or len(others) < 3:
            continue
        correct = pool[int(rng.integers(len(pool)))]
        distractors = pick_distractors(correct, others, 3, rng)
        if distractors is None:
            continue
        options, answer = balancer.place(qtype, correct, distractors)
        questions.append(make_qa(qtype, options, answer, {"generator": "knowledge", "category": category}))
    return questions
