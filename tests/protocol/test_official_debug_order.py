"""--subset official-debug asks in the order Transformers/internvl_query.py does: it iterates
``sample_keys = random.sample(list(chat_ad.keys()), 1600)`` (after ``random.seed(1)``) as sampled,
so its answers file is in that order. Order matters to the numbers: helper/summary.py removes
answers without a letter while iterating, skipping the answer after each, and after an image's
last question that is the next image *in the file's order* of answers."""

from __future__ import annotations

import json
import random
from pathlib import Path

from mmad.data.official import load_benchmark
from mmad.protocol.prompts import PromptSettings
from mmad.run.config import RunConfig
from mmad.run.plan import select_questions


def test_the_debug_images_are_asked_in_the_samples_order(tmp_path: Path) -> None:
    qa = {"Question": "Is there any defect?", "Options": {"A": "Yes.", "B": "No."}, "Answer": "B"}
    keys = [f"VisA/candle/test/{'good' if i % 3 else 'bad'}/{i:04d}.JPG" for i in range(1700)]
    data = {
        key: {"mask_path": "", "random_templates": [], "conversation": [{**qa, "type": "Anomaly Detection"}]}
        for key in keys
    }
    (tmp_path / "mmad.json").write_text(json.dumps(data))
    config = RunConfig.from_flat("random", str(tmp_path), subset="official-debug")
    selection = select_questions(load_benchmark(tmp_path / "mmad.json"), config.selection, PromptSettings())
    random.seed(1)
    expected = random.sample(list(data.keys()), 1600)
    assert [s.item.key for s in selection.items] == expected
    assert [key[0].split("#")[0] for key in selection.keys] == expected
