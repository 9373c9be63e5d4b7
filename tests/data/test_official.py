import json
from pathlib import Path

import pytest

from mmad.data.official import load_benchmark, write_benchmark
from mmad.data.schema import RAW_TYPES, SOURCE_DATASETS, Subtask, resolve_inside
from mmad.errors import BenchmarkFormatError, UnsafePathError
from tests.helpers.fullsize import full_size_mmad


def test_load_reads_every_field_and_all_eight_types(mmad_json: Path) -> None:
    bench = load_benchmark(mmad_json.parent)
    assert bench.sha256 and len(bench.sha256) == 64
    assert {item.dataset for item in bench.items} == set(SOURCE_DATASETS)
    assert {q.type for q in bench.questions()} == set(RAW_TYPES)
    item = bench.item("DS-MVTec/bottle/image/broken_large/000.png")
    assert (item.category, item.split, item.defect_type, item.is_normal) == (
        "bottle",
        "image",
        "broken_large",
        False,
    )
    first = item.questions[0]
    assert first.id == "DS-MVTec/bottle/image/broken_large/000.png#0"
    assert first.subtask is Subtask.ANOMALY_DISCRIMINATION
    assert first.options == {"A": "Yes.", "B": "No."}
    assert first.answer == "A" and first.annotation is True
    details = next(q for q in bench.questions() if q.type == "Object Details")
    assert details.subtask is Subtask.OBJECT_ANALYSIS


def test_paths_resolve_against_the_root(mmad_json: Path) -> None:
    bench = load_benchmark(mmad_json)
    for item in bench.items:
        assert bench.resolve(item.key).is_file()
        for template in item.templates(2) + item.templates(1, similar=True):
            assert bench.resolve(template).is_file()
        mask = bench.mask_file(item)
        if item.is_normal:
            assert mask is None
        else:
            assert mask is not None and mask.exists()
    loco = bench.item("MVTec-LOCO/juice_bottle/test/logical_anomalies/000.png")
    assert bench.mask_file(loco).is_dir()  # LOCO masks are folders


def test_round_trip_is_lossless(mmad_json: Path, tmp_path: Path) -> None:
    bench = load_benchmark(mmad_json)
    raw = json.loads(mmad_json.read_text())
    raw["DS-MVTec/bottle/image/good/000.png"]["caption"] = "kept"
    raw["DS-MVTec/bottle/image/good/000.png"]["conversation"][0]["note"] = {"x": 1}
    edited = tmp_path / "mmad.json"
    edited.write_text(json.dumps(raw))
    out = tmp_path / "out" / "mmad.json"
    write_benchmark(load_benchmark(edited), out)
    written = json.loads(out.read_text())
    # Lossless, plus each question's content id, recorded so that it survives later edits.
    ids = [qa.pop("id") for record in written.values() for qa in record["conversation"]]
    assert written == raw
    assert ids == [q.uid for q in bench.questions()] and all(i.startswith("q-") for i in ids)
    assert load_benchmark(out, root=mmad_json.parent).n_questions == bench.n_questions


@pytest.mark.parametrize(("drop", "expected"), [(0, 39672), (2, 39670)])
def test_both_published_sizes_load(tmp_path: Path, drop: int, expected: int) -> None:
    path = tmp_path / "mmad.json"
    path.write_text(json.dumps(full_size_mmad(drop=drop)))
    bench = load_benchmark(path)
    assert bench.n_questions == expected
    assert len(bench.items) == 8297


def test_bad_structure_names_the_record(tmp_path: Path) -> None:
    path = tmp_path / "mmad.json"
    path.write_text(json.dumps({"VisA/candle/test/bad/000.JPG": {"conversation": [{"Question": "q"}]}}))
    with pytest.raises(BenchmarkFormatError, match=r"VisA/candle/test/bad/000.JPG.*lacks Options, Answer, type"):
        load_benchmark(path)
    path.write_text("[1, 2]")
    with pytest.raises(BenchmarkFormatError, match="one object keyed by image path"):
        load_benchmark(path)
    path.write_text("{not json")
    with pytest.raises(BenchmarkFormatError, match="not valid json"):
        load_benchmark(path)
    with pytest.raises(BenchmarkFormatError, match=r"no mmad\.json"):
        load_benchmark(tmp_path / "nowhere")


def test_paths_that_leave_the_root_are_refused(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "a/../b.png") == tmp_path / "a/../b.png"
    with pytest.raises(UnsafePathError, match=r"leaves the data root"):
        resolve_inside(tmp_path, "a/../../etc/passwd")
    with pytest.raises(UnsafePathError, match="absolute"):
        resolve_inside(tmp_path, "/etc/passwd")


def test_writing_is_atomic(mmad_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_benchmark(mmad_json)
    target = tmp_path / "mmad.json"
    target.write_text("previous content")
    import mmad.data.official as official

    real_fdopen = official.os.fdopen

    class DiesHalfway:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, text: str) -> None:
            self.handle.write(text[: len(text) // 2])
            raise OSError("disk full")

    monkeypatch.setattr(official.os, "fdopen", lambda fd, *a, **k: DiesHalfway(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="disk full"):
        write_benchmark(bench, target)
    assert target.read_text() == "previous content"
    assert list(tmp_path.iterdir()) == [target]
