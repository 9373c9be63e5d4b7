"""The 22 published result CSVs of the official repository, read as leaderboard rows."""

from pathlib import Path

import pytest

from mmad.score import load_published, read_accuracy_csv, recompute_average_row
from mmad.score.official_csv import SUBTASK_COLUMNS, published_csv_text


def _files(reference_dir: Path) -> list[Path]:
    files = sorted((reference_dir / "official" / "all_result").glob("*.csv"))
    assert len(files) == 22
    return files


def test_average_rows_are_reproduced_from_dataset_rows(reference_dir: Path) -> None:
    for path in _files(reference_dir):
        result = read_accuracy_csv(path)
        assert len(result.datasets) == 4, path.name
        recomputed = recompute_average_row(result)
        for column in result.columns:
            assert recomputed[column] == pytest.approx(result.rows["Average"][column], abs=1e-9), (
                path.name,
                column,
            )
        for dataset in result.datasets:
            row = result.rows[dataset]
            assert row["Average"] == pytest.approx(sum(row[c] for c in SUBTASK_COLUMNS) / 7, abs=1e-9)
            if "Miss" in row:
                assert row["Recall"] == pytest.approx(100 - row["Miss"], abs=1e-9)


def test_written_back_reads_the_same(reference_dir: Path, tmp_path: Path) -> None:
    for path in _files(reference_dir):
        result = read_accuracy_csv(path)
        copy = tmp_path / path.name
        copy.write_text(published_csv_text(result))
        again = read_accuracy_csv(copy)
        assert again.rows == result.rows and again.columns == result.columns
        assert (again.model, again.shots, again.suffix) == (result.model, result.shots, result.suffix)


def test_leaderboard_order_and_names(reference_dir: Path) -> None:
    results = load_published(reference_dir / "official" / "all_result")
    top = results[0]
    assert top.model == "Qwen2-VL-72B-Instruct" and top.suffix == "_test1"
    assert top.average == pytest.approx(78.62, abs=0.01)
    gpt4o = next(r for r in results if r.model == "gpt-4o")
    assert gpt4o.shots == 1 and gpt4o.average == pytest.approx(74.31, abs=0.01)
    assert gpt4o.subtask_averages()["Anomaly Detection"] == pytest.approx(67.47, abs=0.01)
    assert results[-1].model == "AnomalyGPT_train_mvtec"
