"""`mmad serve -m expert --data B` and `mmad eval -m expert` on B answer alike when the client sends the files'
own bytes (--original-images): a query over HTTP has no path, so it had no category and no calibrated threshold,
and the served expert fell back to a plain one (4 of 12 Anomaly Discrimination answers differed here)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the [expert] extra is installed by `make setup`")
pytest.importorskip("skimage", reason="the [demo] extra (scikit-image photos) is installed by `make setup`")

from mmad.api import evaluate_async
from mmad.builder import build_benchmark
from mmad.data.official import load_benchmark
from mmad.expert.patchcore import DetectorSettings, PatchCoreExpert
from mmad.models.expert_model import ExpertModel
from mmad.records.record import read_records
from mmad.run.config import RunConfig
from mmad.serve.server import ChatServer, serve_in_thread
from tests.helpers.photo_defects import write_mvtec_tree

pytestmark = [pytest.mark.expert, pytest.mark.slow]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served_expert")
    source = write_mvtec_tree(
        root / "source",
        seed=0,
        categories=("brick", "coffee", "grass"),
        n_train=4,
        n_good=2,
        n_small=1,
        n_large=1,
        size=224,
    )
    build_benchmark(source, root / "bench", name="Photos", copy=True)
    return root / "bench" / "mmad.json"


def _answers(run: Path) -> dict[str, str | None]:
    return {r.question_id: r.answer for r in read_records(run / "records.jsonl")}


def test_served_and_in_process_expert_agree_on_original_images(photos: Path, tmp_path: Path) -> None:
    expert = PatchCoreExpert(settings=DetectorSettings(image_size=160))
    common = {"cache": False, "subtasks": ["Anomaly Discrimination", "Defect Localization"]}
    in_process = RunConfig.from_flat("expert", str(photos), **common)
    asyncio.run(evaluate_async(in_process, out=tmp_path / "in-process", model=ExpertModel(expert)))
    served = ExpertModel(expert)
    served.prepare(load_benchmark(photos))
    with serve_in_thread(ChatServer(served, model_name="expert")) as server:
        config = RunConfig.from_flat(
            "mmad:expert", str(photos), base_url=server.base_url, original_images=True, **common
        )
        asyncio.run(evaluate_async(config, out=tmp_path / "served"))
    here, there = _answers(tmp_path / "in-process"), _answers(tmp_path / "served")
    assert len(here) > 12 and set(here) == set(there)  # 12 images: an AD question each, DL on the defective
    assert {q: a for q, a in here.items() if there[q] != a} == {}


def test_mmad_serve_says_at_start_what_the_expert_cannot_know_over_http(photos: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    command = [sys.executable, "-m", "mmad", "serve", "-m", "expert", "--port", "0", "--data", str(photos.parent)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as server:
        try:
            assert server.stderr is not None
            lines: list[str] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(line.startswith("serving") for line in lines):
                line = server.stderr.readline()
                if not line:
                    break
                lines.append(line)
        finally:
            server.terminate()
            server.wait(timeout=30)
    said = " ".join(" ".join(lines).split())
    assert "--original-images" in said and "may differ from `mmad eval -m expert`" in said, said
