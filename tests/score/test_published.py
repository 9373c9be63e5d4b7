"""The published results shipped with mmad: the 22 official CSVs, the paper's rows, the human
baselines and later results, read from the package alone."""

import sys
from pathlib import Path

import pytest

import mmad
from mmad.data.schema import SUBTASKS
from mmad.errors import AnswersFormatError
from mmad.score import load_published, read_accuracy_csv, recompute_average_row
from mmad.score.official_csv import SUBTASK_COLUMNS, published_csv_text
from mmad.score.published import (
    CSV_FOLDER,
    PUBLISHED_PROTOCOL,
    leakage_notes,
    load_published_results,
    packaged_csv_names,
    packaged_folder,
    read_catalog,
)


def _packaged_files() -> list[Path]:
    with packaged_folder() as folder:
        files = sorted((folder / CSV_FOLDER).glob("*.csv"))
    assert len(files) == 22
    return files


def test_packaged_csvs_equal_the_reference_files(reference_dir: Path) -> None:
    reference = sorted((reference_dir / "official" / "all_result").glob("*.csv"))
    assert [p.name for p in reference] == packaged_csv_names()
    for ours, theirs in zip(_packaged_files(), reference, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name


def test_average_rows_are_reproduced_from_dataset_rows() -> None:
    for path in _packaged_files():
        result = read_accuracy_csv(path)
        assert len(result.datasets) == 4, path.name
        recomputed = recompute_average_row(result)
        for column in result.columns:
            assert recomputed[column] == pytest.approx(result.rows["Average"][column], abs=1e-9), (path.name, column)
        for dataset in result.datasets:
            row = result.rows[dataset]
            assert row["Average"] == pytest.approx(sum(row[c] for c in SUBTASK_COLUMNS) / 7, abs=1e-9)
            if "Miss" in row:
                assert row["Recall"] == pytest.approx(100 - row["Miss"], abs=1e-9)


def test_the_loader_reproduces_every_average_row() -> None:
    entries = {e.csv: e for e in load_published_results() if e.csv}
    assert len(entries) == 22
    for path in _packaged_files():
        result = read_accuracy_csv(path)
        entry = entries[f"{CSV_FOLDER}/{path.name}"]
        recomputed = recompute_average_row(result)
        assert entry.average == pytest.approx(recomputed["Average"], abs=1e-9)
        assert entry.subtasks["Anomaly Discrimination"] == pytest.approx(recomputed["Anomaly Detection"], abs=1e-9)
        for column in SUBTASK_COLUMNS[1:]:
            assert entry.subtasks[column] == pytest.approx(recomputed[column], abs=1e-9)
        assert set(entry.datasets) == set(result.datasets)


def test_written_back_reads_the_same(tmp_path: Path) -> None:
    for path in _packaged_files():
        result = read_accuracy_csv(path)
        copy = tmp_path / path.name
        copy.write_text(published_csv_text(result))
        again = read_accuracy_csv(copy)
        assert again.rows == result.rows and again.columns == result.columns
        assert (again.model, again.shots, again.suffix) == (result.model, result.shots, result.suffix)


def test_load_published_defaults_to_the_shipped_files() -> None:
    results = load_published()
    assert len(results) == 22
    top = results[0]
    assert top.model == "Qwen2-VL-72B-Instruct" and top.suffix == "_test1"
    assert top.average == pytest.approx(78.62, abs=0.01)
    gpt4o = next(r for r in results if r.model == "gpt-4o")
    assert gpt4o.shots == 1 and gpt4o.average == pytest.approx(74.31, abs=0.01)
    assert gpt4o.subtask_averages()["Anomaly Detection"] == pytest.approx(67.47, abs=0.01)
    assert results[-1].model == "AnomalyGPT_train_mvtec"
    assert mmad.load_published is load_published


def test_the_catalog_covers_every_file_once_with_source_and_protocol() -> None:
    catalog = read_catalog()
    files = [e.csv for e in catalog.results if e.csv]
    assert sorted(files) == sorted(f"{CSV_FOLDER}/{name}" for name in packaged_csv_names())
    assert len({e.id for e in catalog.results}) == len(catalog.results)
    for entry in catalog.results:
        assert entry.source and entry.citation and entry.protocol, entry.id
        assert entry.group in catalog.groups or entry.group.startswith("own:"), entry.id
        assert entry.protocol_text.startswith(PUBLISHED_PROTOCOL)


def test_human_baselines_paper_rows_and_later_results_are_shipped() -> None:
    entries = {e.id: e for e in load_published_results()}
    expert, ordinary = entries["paper/human-expert"], entries["paper/human-ordinary"]
    assert expert.kind == ordinary.kind == "human" and not expert.ranked
    assert expert.average == pytest.approx(86.65) and ordinary.average == pytest.approx(78.69)
    # The paper's rows average their seven subtasks; the expert's AD is 95.24 (AD-Copilot README), not 95.04.
    for entry in (expert, ordinary, entries["paper/gpt-4o"], entries["paper/anomalygpt"]):
        assert sum(entry.subtasks.values()) / 7 == pytest.approx(entry.average, abs=0.01)
    assert expert.subtasks["Anomaly Discrimination"] == pytest.approx(95.24) and not expert.notes
    assert entries["paper/gpt-4o"].average == pytest.approx(74.92)
    later = {e.system.split(" (")[0]: e for e in entries.values() if e.id.startswith("later/")}
    assert later["AgentIAD"].average == pytest.approx(82.88) and "2512.13671" in later["AgentIAD"].citation
    assert "Anomaly-LR" in later["AgentIAD"].citation
    for name, average in (("AD-Copilot-Thinking", 82.29), ("AD-Copilot", 78.71)):
        assert later[name].average == pytest.approx(average) and later[name].shots == 1
    thinking = later["AD-Copilot-Thinking"].subtasks
    assert list(thinking.values()) == [73.95, 74.29, 76.40, 84.92, 86.93, 91.86, 87.67]
    assert list(thinking) == [s.value for s in SUBTASKS]
    assert sum(later["AD-Copilot"].subtasks.values()) / 7 == pytest.approx(78.71, abs=0.01)
    # every later row says its shots: a number, or that the source does not state it (or why it has none)
    for entry in later.values():
        assert entry.shots is not None or "shot" in entry.protocol, entry.id
    assert later["EMIT"].average == pytest.approx(81.95) and "corrected" in later["EMIT"].protocol
    assert all(not e.ranked for e in later.values())
    claude = next(e for e in entries.values() if "claude" in (e.csv or ""))
    assert claude.coverage == "subset" and "960" in claude.coverage_note
    anomalygpt = entries["official/AnomalyGPT_train_mvtec"]
    assert anomalygpt.seen_test_products == "yes" and "MVTec AD" in anomalygpt.seen_note
    assert {n.system for n in leakage_notes()} >= {"AnomalyR1", "OmniAD (v1)"}


def test_a_folder_of_csvs_keeps_known_metadata_and_marks_unknown_files(tmp_path: Path) -> None:
    source = _packaged_files()[0]
    (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "answers_1_shot_mine_accuracy.csv").write_bytes(source.read_bytes())
    entries = {e.id: e for e in load_published_results(tmp_path)}
    known = next(e for e in entries.values() if e.id.startswith("official/"))
    assert known.protocol.startswith("official") or "script" in known.protocol
    assert known.source == str(tmp_path / source.name)
    mine = entries["file/answers_1_shot_mine_accuracy"]
    assert mine.system == "mine" and mine.protocol.startswith("unknown") and mine.ranked
    with pytest.raises(AnswersFormatError, match="is not a folder"):
        load_published_results(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnswersFormatError, match=r"holds no \.csv files"):
        load_published_results(empty)


def test_loading_reads_nothing_outside_the_package() -> None:
    package = Path(mmad.__file__).resolve().parent
    opened: list[str] = []
    watching = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if watching[0] and event == "open" and isinstance(args[0], str | Path):
            opened.append(str(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed; this one stops recording below
    try:
        load_published_results()
        load_published()
    finally:
        watching[0] = False
    files = [Path(p).resolve() for p in opened if not p.endswith((".py", ".pyc")) and Path(p).suffix]
    assert files, "the audit hook saw no file opened"
    assert all(package in p.parents for p in files), [str(p) for p in files if package not in p.parents]
