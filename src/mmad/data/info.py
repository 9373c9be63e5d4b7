"""Counts that describe a benchmark: what `mmad info` prints."""

from __future__ import annotations

from collections import Counter, defaultdict

from pydantic import BaseModel

from mmad.data.schema import SUBTASKS, Benchmark


class BenchmarkInfo(BaseModel):
    """Counts per source dataset and subtask, images, categories, defect types and answer letters."""

    sha256: str
    n_images: int
    n_questions: int
    questions: dict[str, dict[str, int]]
    images: dict[str, dict[str, int]]
    categories: dict[str, list[str]]
    defect_types: dict[str, list[str]]
    answer_letters: dict[str, dict[str, int]]
    unknown_types: dict[str, int]


def describe(benchmark: Benchmark) -> BenchmarkInfo:
    """Count what a benchmark holds."""
    questions: dict[str, Counter[str]] = defaultdict(Counter)
    images: dict[str, Counter[str]] = defaultdict(Counter)
    categories: dict[str, set[str]] = defaultdict(set)
    defects: dict[str, set[str]] = defaultdict(set)
    letters: dict[str, Counter[str]] = defaultdict(Counter)
    unknown: Counter[str] = Counter()
    for item in benchmark.items:
        dataset = item.dataset
        images[dataset]["normal" if item.defect_free else "abnormal"] += 1
        categories[dataset].add(item.category)
        if not item.defect_free:
            defects[f"{dataset}/{item.category}"].add(item.defect_type)
        for question in item.questions:
            subtask = question.subtask
            if subtask is None:
                unknown[question.type] += 1
                continue
            questions[dataset][subtask.value] += 1
            letters[subtask.value][question.answer] += 1
    ordered = {s.value: 0 for s in SUBTASKS}
    return BenchmarkInfo(
        sha256=benchmark.sha256,
        n_images=len(benchmark.items),
        n_questions=benchmark.n_questions,
        questions={ds: {k: counts.get(k, 0) for k in ordered} for ds, counts in questions.items()},
        images={ds: dict(counts) for ds, counts in images.items()},
        categories={ds: sorted(names) for ds, names in categories.items()},
        defect_types={cat: sorted(names) for cat, names in sorted(defects.items())},
        answer_letters={s: dict(sorted(c.items())) for s, c in letters.items()},
        unknown_types=dict(unknown),
    )
