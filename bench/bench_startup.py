"""Whole-process start-up and scoring times (targets: `mmad --help` < 0.3 s; `mmad score` of 39,672
answers < 0.6 s, heatmap included). Each figure is the best of five runs of a fresh process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.fullsize import full_size_mmad

MMAD = [sys.executable, "-m", "mmad"]


def best_of(runs: int, command: list[str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "COLUMNS": "200"})
        times.append(time.perf_counter() - start)
    return min(times)


def official_answers(folder: Path) -> Path:
    """An official answers json with one answer per question of a full-size benchmark."""
    rng = random.Random(0)
    records = []
    for key, item in full_size_mmad().items():
        for qa in item["conversation"]:
            guess = rng.choice([*qa["Options"], ""])
            records.append(
                {
                    "image": key,
                    "question": {"type": "text", "text": qa["Question"]},
                    "question_type": qa["type"],
                    "correct_answer": qa["Answer"],
                    "gpt_answer": guess,
                }
            )
    path = folder / "answers_1_shot_bench.json"
    path.write_text(json.dumps(records))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        answers = official_answers(Path(scratch))
        help_s = best_of(5, [*MMAD, "--help"])
        score_s = best_of(5, [*MMAD, "score", str(answers), "--out", scratch])
        plain_s = best_of(5, [*MMAD, "score", str(answers), "--out", scratch, "--no-plot"])
        python_s = best_of(5, [sys.executable, "-c", "pass"])
    print(f"python alone: {python_s:.3f} s")
    print(f"mmad --help: {help_s:.3f} s (target < 0.3 s)")
    print(f"mmad score, 39,672 answers, heatmap included: {score_s:.3f} s (target < 0.6 s); without it {plain_s:.3f} s")
    if help_s >= 0.3 or score_s >= 0.6:
        sys.exit("a target was missed")


if __name__ == "__main__":
    main()
