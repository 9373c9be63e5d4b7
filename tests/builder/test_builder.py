"""The benchmark builder on every distributed layout, its answers against the masks, and the demo."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmad.builder import build_benchmark, make_synthetic_dataset, read_dataset
from mmad.builder.geometry import EDGES, locate
from mmad.cli import main
from mmad.data.official import load_benchmark, write_benchmark
from mmad.data.validate import validate
from mmad.errors import DatasetLayoutError
from tests.helpers.ad_trees import make_tree


@pytest.mark.parametrize("layout", ["mvtec", "visa", "loco", "goodsad", "folder"])
def test_each_layout_builds_a_valid_benchmark(tmp_path: Path, layout: str) -> None:
    source = make_tree(tmp_path / "src", layout)
    assert read_dataset(source).layout == layout  # detected
    bench, report = build_benchmark(source, tmp_path / "out", name="Factory", seed=1)
    assert validate(tmp_path / "out").ok, [str(p) for p in validate(tmp_path / "out").problems]
    again = tmp_path / "again.json"
    write_benchmark(load_benchmark(tmp_path / "out"), again)
    assert json.loads(again.read_text()) == json.loads((tmp_path / "out" / "mmad.json").read_text())
    types = {q.type for q in bench.questions()}
    assert {"Anomaly Detection", "Defect Localization", "Defect Analysis", "Object Classification"} <= types
    # VisA's one type "bad" ("A defect.") and LOCO's two broad types cover every other defect name
    broad = layout in {"visa", "loco"}
    assert ("Defect Classification" in types) == (not broad)
    reason = "Defect Classification: the answer is a broad term covering the other defect names"
    assert (report.skipped[reason] > 0) == broad
    pool = 2 if layout == "folder" else 3  # folder: half of the 4 normal images are held out as test images
    for item in bench.items:
        assert item.dataset == "Factory"
        assert len(item.random_templates) == pool == len(item.similar_templates)
        assert all(t.startswith(f"Factory/{item.category}/train/good/") for t in item.random_templates)
        if not item.is_normal:
            assert bench.mask_file(item) is not None and bench.mask_file(item).exists()
        if not item.is_normal:
            assert bench.mask_file(item).is_file()  # LOCO's instance masks too: one union file


def test_answers_follow_the_masks_and_labels(tmp_path: Path) -> None:
    bench, _ = build_benchmark(make_tree(tmp_path / "src", "mvtec"), tmp_path / "out", name="Factory")
    for item in bench.items:
        by_type = {q.type: q for q in item.questions}
        ad = by_type["Anomaly Detection"]
        assert ad.options[ad.answer] == ("No." if item.is_normal else "Yes.")
        if item.is_normal:
            oc = by_type["Object Classification"]
            assert oc.options[oc.answer] == {"tablet": "A round tablet.", "pill_box": "A pill box."}[item.category]
            continue
        dc = by_type["Defect Classification"]
        assert dc.options[dc.answer] == {"scratch": "A scratch.", "hole": "A hole."}[item.defect_type]
        dl = by_type["Defect Localization"]
        # scratches were drawn at (0.2, 0.2) of the image, holes at (0.8, 0.8); the tablet spans the middle
        assert dl.options[dl.answer] == {"scratch": "Top left", "hole": "Bottom right"}[item.defect_type]
        assert "Top left" not in [v for k, v in dl.options.items() if k != dl.answer] or item.defect_type != "scratch"
        dd = by_type["Defect Description"]
        assert ("dark" in dd.options[dd.answer]) == (item.defect_type == "hole")
        assert by_type["Defect Analysis"].extra["mmad_source"]["generator"] == "family-template"


def test_grid_reading() -> None:
    mask = np.zeros((90, 90), bool)
    mask[5:20, 5:20] = True
    assert locate(mask, (0, 0, 90, 90)).answer == "Top left"
    ring = np.zeros((90, 90), bool)
    ring[:6, :] = ring[-6:, :] = ring[:, :6] = ring[:, -6:] = True
    assert locate(ring, (0, 0, 90, 90)).answer == EDGES
    straddle = np.zeros((90, 90), bool)
    straddle[40:50, 25:35] = True  # across the left/centre boundary: ambiguous
    assert locate(straddle, (0, 0, 90, 90)) is None
    top = np.zeros((90, 90), bool)
    top[5:15, 10:50] = True
    assert locate(top, (0, 0, 90, 90)).answer == "At the top"


def test_letters_are_balanced_and_options_distinct(tmp_path: Path) -> None:
    source = make_synthetic_dataset(tmp_path / "src", n_train=4, n_test_good=4, n_per_defect=3)
    bench, report = build_benchmark(source.root, tmp_path / "out", name="SynthAD", knowledge=source.knowledge)
    for qtype in {q.type for q in bench.questions()}:
        letters = Counter(q.answer for q in bench.questions() if q.type == qtype)
        assert max(letters.values()) - min(letters.values()) <= 1, (qtype, letters)
    for question in bench.questions():
        texts = [t.lower() for t in question.options.values()]
        assert len(set(texts)) == len(texts)
    assert report.questions["Object Structure"] > 0 and report.questions["Object Details"] > 0


def test_synthetic_dataset_is_deterministic(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a", categories=["brick", "board"], n_train=2, n_test_good=1, n_per_defect=1)
    b = make_synthetic_dataset(tmp_path / "b", categories=["brick", "board"], n_train=2, n_test_good=1, n_per_defect=1)
    files_a = sorted(p.relative_to(a.root) for p in a.root.rglob("*.png"))
    assert files_a == sorted(p.relative_to(b.root) for p in b.root.rglob("*.png"))
    assert all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files_a)
    for mask_file in (a.root / "board" / "ground_truth").rglob("*.png"):
        from PIL import Image

        assert np.asarray(Image.open(mask_file)).any()


def test_layout_errors_name_the_file(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", "mvtec")
    (source / "tablet" / "ground_truth" / "hole" / "001_mask.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"001\.png.*001_mask\.png"):
        build_benchmark(source, tmp_path / "out")
    assert not (tmp_path / "out" / "mmad.json").exists()


def test_cli_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_tree(tmp_path / "src", "goodsad")
    assert main(["build", str(source), "--out", str(tmp_path / "out"), "--name", "Shelf"]) == 0
    assert "built" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "out")]) == 0


@pytest.mark.slow
def test_demo_runs_the_whole_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmad.cli.demo import demo_models, run_demo

    fitted: list[int] = []
    if "expert" in demo_models():  # each category is fitted once, though the demo and its run both prepare
        from mmad.models import expert_model

        monkeypatch.setattr(expert_model, "_fits", {})
        real = expert_model.calibrate
        monkeypatch.setattr(expert_model, "calibrate", lambda *a, **k: fitted.append(1) or real(*a, **k))
    steps: list[tuple[str, int, int]] = []
    result = run_demo(tmp_path / "demo", on_step=lambda *step: steps.append(step))
    assert validate(result.benchmark).ok
    assert "random" in result.runs
    for run in result.runs.values():
        assert run.complete and run.table.average is not None
        assert (run.run_dir / "records.jsonl").exists()
    if "expert" in result.runs:
        fits = [step for step in steps if step[0] == "fitting the expert"]
        assert fits[-1] == ("fitting the expert", 6, 6) and len(fitted) == 6
    # the demo's figures: every metric with the Average's interval; the report with its intervals and cost section
    for scored in result.scored.values():
        average = scored.metric("mmad").cell("Average")  # type: ignore[union-attr]
        assert average is not None and average.has_interval
    assert result.scored["random"].metric("detection") is not None  # letters only: Overkill and Miss
    if "expert" in result.scored:  # a score of its own: AUROC and the 1%/5% operating points
        operating = result.scored["expert"].metric("operating")
        assert operating is not None and operating.cell("AUROC").value is not None  # type: ignore[union-attr]
    # the tool-using inspector against the scripted tool user: both branches, blended, over HTTP
    tools = result.scored["scripted-tools"].metric("tools")
    assert tools is not None and tools.cell("blend accuracy") is not None
    assert result.scored["scripted-tools"].metric("tool-use").cell("calls/question").value == 2  # type: ignore[union-attr]
    assert result.report is not None
    page = result.report.read_text()
    assert 'class="ci"' in page and "Cost and quality" in page
    # the expert's run again with --perturb dark=0.5 (the random model's answers ignore the image), shown
    # against the clean one; a dimmer lamp changes what the expert sees, so its accuracy and AUROC move
    if "expert" in result.runs:
        assert "random-dark0.5" not in result.runs
        dim = result.runs["expert-dark0.5"]
        assert dim.run_dir.name == "expert-dark0.5" and 'id="robustness"' in page
        assert "(perturb dark=0.5) against expert" in page
        card = json.loads((dim.run_dir / "run.json").read_text())
        assert card["model"]["name"] == "expert" and card["card"]["perturb"]["applied"] == {"dark": 0.5}
        clean_auroc = result.scored["expert"].metric("operating").cell("AUROC").value  # type: ignore[union-attr]
        dim_auroc = result.scored["expert-dark0.5"].metric("operating").cell("AUROC").value  # type: ignore[union-attr]
        assert clean_auroc is not None and dim_auroc is not None and abs(clean_auroc - dim_auroc) > 2


def test_a_mask_of_another_size_is_refused_naming_the_file_and_both_sizes(tmp_path: Path) -> None:
    from PIL import Image

    source = make_tree(tmp_path / "src", "mvtec")
    mask = source / "tablet" / "ground_truth" / "hole" / "001_mask.png"
    with Image.open(source / "tablet" / "test" / "hole" / "001.png") as image:
        width, height = image.size
    with Image.open(mask) as opened:
        opened.resize((width // 2, height)).save(mask)  # half as wide: stretched back, every defect would move
    with pytest.raises(DatasetLayoutError) as caught:
        build_benchmark(source, tmp_path / "out")
    message = str(caught.value)
    assert str(mask) in message and f"{width // 2}x{height}" in message and f"{width}x{height}" in message
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert main(["build", str(source), "--out", str(tmp_path / "cli")]) == 2
