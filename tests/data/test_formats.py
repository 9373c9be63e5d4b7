"""The other shapes people hold: the Hub viewer's metadata.csv and per-category QA.json trees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmad.data.formats import MMAD_JSON, QA_TREE, VIEWER_CSV, check_protocol, detect_format
from mmad.data.official import load_benchmark
from mmad.data.validate import validate
from mmad.data.viewer import infer_type, mask_path_from_export, parse_options
from mmad.errors import BenchmarkFormatError
from tests.helpers.mmad_release import Release


def _csv(tmp_path: Path, release: Release) -> Path:
    path = tmp_path / "metadata.csv"
    path.write_bytes(release.metadata)
    return path


def test_the_viewer_export_gives_the_same_questions_as_the_json(tmp_path: Path, release: Release) -> None:
    official = load_benchmark(release.tree)
    viewer = load_benchmark(_csv(tmp_path, release), root=release.tree)
    assert (viewer.origin, official.origin) == (VIEWER_CSV, MMAD_JSON)
    assert [i.key for i in viewer.items] == [i.key for i in official.items]
    for mine, theirs in zip(viewer.questions(), official.questions(), strict=True):
        assert (mine.id, mine.stem, mine.options, mine.answer) == (
            theirs.id,
            theirs.stem,
            theirs.options,
            theirs.answer,
        )
        assert mine.subtask == theirs.subtask  # the type, read back from the question text
    for mine, theirs in zip(viewer.items, official.items, strict=True):
        assert mine.mask_path == theirs.mask_path  # the export's three-component prefix is undone
        assert viewer.mask_file(mine) == official.mask_file(theirs)
        assert mine.similar_templates == theirs.similar_templates[:1] and mine.random_templates == []
    assert set(viewer.lacks) == {"random_templates", "similar_templates", "annotation", "type"}


def test_the_viewer_export_is_found_in_a_folder_and_validates_with_its_limits(tmp_path: Path, release: Release) -> None:
    _csv(tmp_path, release)
    assert detect_format(tmp_path) == VIEWER_CSV
    report = validate(tmp_path, root=release.tree)
    assert report.ok, [str(p) for p in report.problems if p.severity == "error"]
    assert {p.message.split(":")[0] for p in report.problems if p.code == "shape-lacks"} >= {"random_templates"}


def test_protocols_the_viewer_export_cannot_serve_are_refused(tmp_path: Path, release: Release) -> None:
    viewer = load_benchmark(_csv(tmp_path, release), root=release.tree)
    check_protocol(viewer, shots=0)
    check_protocol(viewer, shots=1, similar_templates=True)
    with pytest.raises(BenchmarkFormatError) as caught:
        check_protocol(viewer, shots=1)
    message = str(caught.value)
    assert "metadata.csv" in message and "no random templates per image" in message
    assert "run 0-shot" in message and "use similar templates for 1-shot" in message and "mmad download" in message
    with pytest.raises(BenchmarkFormatError, match=r"only 1 similar templates per image.*a 2-shot run"):
        check_protocol(viewer, shots=2, similar_templates=True)
    check_protocol(load_benchmark(release.tree), shots=3)  # mmad.json serves any k


def test_a_viewer_export_without_its_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "metadata.csv"
    path.write_text("query_image,question,answer\nVisA/candle/test/good/000.JPG,Is there any defect?,B\n")
    with pytest.raises(BenchmarkFormatError, match=r"lacks the column\(s\) options, template_image, mask"):
        load_benchmark(path)


def test_viewer_helpers() -> None:
    assert parse_options("A: Yes.\nB: No.", "x") == {"A": "Yes.", "B": "No."}
    assert parse_options("A: two\nlines\nB: b", "x") == {"A": "two\nlines", "B": "b"}
    with pytest.raises(BenchmarkFormatError, match="do not start with 'A: '"):
        parse_options("Yes or no", "row 2")
    key = "DS-MVTec/bottle/image/broken_large/000.png"
    assert mask_path_from_export(key, "DS-MVTec/bottle/image/mask/broken_large/000_mask.png") == (
        "mask/broken_large/000_mask.png"
    )
    assert infer_type("There is a defect in the object. Where is the defect?", normal=False) == "Defect Localization"
    assert infer_type("What is the colour of the cap?", normal=True) == "Object Details"
    assert infer_type("What is odd here?", normal=False) == ""


def _qa_tree(tmp_path: Path, release: Release, *, templates: bool, relative: bool = True) -> Path:
    root = tmp_path / "qa"
    per_category: dict[Path, dict] = {}
    for key, record in json.loads(release.mmad_json).items():
        dataset, category, rest = key.split("/", 2)
        kept = dict(record) if templates else {"mask_path": record["mask_path"], "conversation": record["conversation"]}
        per_category.setdefault(root / dataset / category / "QA.json", {})[rest if relative else key] = kept
    for path, data in per_category.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return root


@pytest.mark.parametrize("relative", [True, False])
def test_a_qa_json_tree_loads_as_the_same_benchmark(tmp_path: Path, release: Release, relative: bool) -> None:
    root = _qa_tree(tmp_path, release, templates=True, relative=relative)
    assert detect_format(root) == QA_TREE
    tree = load_benchmark(root, root=release.tree)
    official = load_benchmark(release.tree)
    assert sorted(q.id for q in tree.questions()) == sorted(q.id for q in official.questions())
    assert tree.origin == QA_TREE and tree.template_limit == {}
    check_protocol(tree, shots=1)


def test_a_qa_json_tree_without_templates_refuses_k_shot(tmp_path: Path, release: Release) -> None:
    tree = load_benchmark(_qa_tree(tmp_path, release, templates=False), root=release.tree)
    assert tree.template_limit == {"random_templates": 0, "similar_templates": 0}
    check_protocol(tree, shots=0)
    with pytest.raises(BenchmarkFormatError, match=r"QA\.json files.*no random templates.*run 0-shot; or get mmad"):
        check_protocol(tree, shots=1)


def test_an_image_in_two_qa_files_is_refused(tmp_path: Path, release: Release) -> None:
    root = _qa_tree(tmp_path, release, templates=True, relative=False)
    first = next(root.glob("*/*/QA.json"))
    other = root / "VisA/elsewhere/QA.json"
    other.parent.mkdir(parents=True)
    shutil.copy(first, other)
    with pytest.raises(BenchmarkFormatError, match=r"is also in another QA\.json"):
        load_benchmark(root)


def test_missing_inputs_name_what_a_k_shot_question_lacks(fresh_mmad_json: Path) -> None:
    from mmad.data.formats import missing_inputs

    bench = load_benchmark(fresh_mmad_json)
    item = bench.item("DS-MVTec/bottle/image/broken_large/000.png")
    assert missing_inputs(bench, item, shots=1) == []
    (fresh_mmad_json.parent / item.random_templates[0]).unlink()
    assert missing_inputs(bench, item, shots=1) == [f"template {item.random_templates[0]} is missing"]
    assert missing_inputs(bench, item, shots=0) == []
    assert missing_inputs(bench, item, shots=4)[-1] == "4-shot needs 4 random templates; the record lists 3"


def test_identical_rows_of_one_image_in_the_viewer_export_are_distinct_questions(
    tmp_path: Path, release: Release
) -> None:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(release.metadata.decode("utf-8"))))
    path = tmp_path / "metadata.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([*rows, rows[1]])  # the first question again, as a copied row
    bench = load_benchmark(path, root=release.tree)
    key = rows[1][rows[0].index("query_image")]
    item = next(i for i in bench.items if i.key == key)
    uids = [q.uid for q in item.questions]
    assert len(uids) == len(set(uids)) and uids[-1] == uids[0] + "-2"
    report = validate(path, root=release.tree)
    assert not [p for p in report.problems if p.code == "duplicate-id"]


def test_a_run_folder_given_as_the_data_names_its_benchmark(mmad_json: Path, tmp_path: Path) -> None:
    from mmad.cli import main

    run = tmp_path / "run"
    assert main(["eval", "-m", "random", "-d", str(mmad_json), "--out", str(run), "--limit", "2", "--no-cache"]) == 0
    with pytest.raises(BenchmarkFormatError, match="is a run folder") as info:
        detect_format(run)
    message = str(info.value)
    assert str(mmad_json) in message and f"mmad score {run}" in message
    assert "mmad download" not in message  # downloading MMAD into a run folder is not the way out
