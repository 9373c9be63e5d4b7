"""Human review through the CLI: verdicts reach the question they were written for, by content id, and a
verdict file that is not well formed changes nothing."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from mmad.cli import main
from mmad.data.official import load_benchmark
from mmad.data.validate import validate

X = "DS-MVTec/bottle/image/broken_large/000.png"  # five questions: AD, DC, DL, DD, DA
Y = "VisA/candle/test/bad/001.JPG"
NORMAL = "GoodsAD/drink_can/test/good/000.jpg"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def bench(fresh_mmad_json: Path) -> Path:
    """A benchmark folder whose json records no ids (as the official mmad.json)."""
    return fresh_mmad_json.parent


def export(bench: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, str]]:
    code, text = run_cli(["review", "export", str(bench), "--out", str(out), "--all", *extra], capsys)
    assert code == 0, text
    with (out / "review.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def fill(
    rows: list[dict[str, str]],
    verdicts: dict[tuple[str, str], str],
    path: Path,
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    """Write the exported rows with verdicts for (image, type), as a spreadsheet might save them."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator=newline)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "verdict": verdicts.get((row["image"], row["type"]), "")})
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def types_of(bench: Path, key: str) -> list[str]:
    return [q.type for q in load_benchmark(bench).item(key).questions]


def test_export_writes_content_ids_and_never_overwrites_a_review(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(bench, tmp_path / "review", capsys)
    loaded = load_benchmark(bench)
    assert [r["id"] for r in rows] == [q.uid for q in loaded.questions()]
    assert all(re.fullmatch(r"q-[0-9a-f]{16}", r["id"]) for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert [q.uid for q in load_benchmark(bench).questions()] == [r["id"] for r in rows]  # the same on every load
    review = tmp_path / "review"
    fill(rows, {(X, "Defect Analysis"): "reject"}, review / "review.csv")
    before = snapshot(tmp_path)
    code, text = run_cli(["review", "export", str(bench), "--out", str(review)], capsys)
    assert code == 2 and "review.csv already exists and may hold verdicts; nothing was written" in text
    assert "--overwrite" in text and "Traceback" not in text and len(text.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before
    code, text = run_cli(["review", "export", str(bench), "--out", str(review), "--overwrite"], capsys)
    assert code == 0 and snapshot(tmp_path) != before


def test_an_older_csv_still_reaches_the_question_it_was_written_for(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two reviewers fill the same export; the second CSV is imported after the first removed a question."""
    rows = export(bench, tmp_path / "review", capsys)
    json_path = bench / "mmad.json"
    original = json_path.read_bytes()
    first = fill(rows, {(X, "Defect Classification"): "reject", (Y, "Defect Analysis"): "accept"}, tmp_path / "a.csv")
    code, text = run_cli(["review", "import", str(bench), str(first)], capsys)
    assert code == 0, text
    assert f"removed {X} [Defect Classification] 'There is a defect in the object. What is the type of" in text
    assert f"accepted {Y} [Defect Analysis]" not in text  # already accepted in the test tree
    assert "accepted 0, removed 1, already accepted 1, no verdict" in text
    assert types_of(bench, X) == ["Anomaly Detection", "Defect Localization", "Defect Description", "Defect Analysis"]
    backups = list(bench.glob("mmad.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == original and f"previous json kept as {backups[0]}" in text
    log = [json.loads(line) for line in (bench / "mmad.json.review-log.jsonl").read_text().splitlines()]
    assert [(e["action"], e["image"], e["type"]) for e in log] == [("removed", X, "Defect Classification")]
    assert all("id" in qa for record in json.loads(json_path.read_text()).values() for qa in record["conversation"])

    # The second reviewer's CSV, written for the older json: Defect Description of X sat at position 3 then.
    second = fill(
        rows,
        {(X, "Defect Classification"): "reject", (X, "Defect Description"): "reject"},
        tmp_path / "b.csv",
    )
    code, text = run_cli(["review", "import", str(bench), str(second)], capsys)
    assert code == 0, text
    assert f"removed {X} [Defect Description]" in text and "removed 1," in text
    assert re.search(r"not applied: line \d+ \(q-[0-9a-f]{16}, " + re.escape(X) + r".*earlier import", text)
    assert types_of(bench, X) == ["Anomaly Detection", "Defect Localization", "Defect Analysis"]
    assert [q.index for q in load_benchmark(bench).item(X).questions] == [0, 1, 2]
    assert validate(bench).ok

    # Importing it once more changes nothing and rewrites nothing.
    before = snapshot(bench)
    code, text = run_cli(["review", "import", str(bench), str(second)], capsys)
    assert code == 0 and "nothing to change, the benchmark was not rewritten" in text
    assert snapshot(bench) == before


def _rows_text(bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str]:
    rows = export(bench, tmp_path / "review", capsys)
    return [r["id"] for r in rows], "id,image,type,question,verdict\n"


BAD_CSVS = [
    (
        "no verdict column",
        lambda ids: f"id,image\n{ids[0]},{X}\n",
        r"has no verdict column \(its first line has the columns 'id', 'image'\)",
    ),
    ("empty", lambda ids: "", r"is empty"),
    ("blank", lambda ids: "\n \n", r"is empty"),
    ("header only", lambda ids: "id,image,verdict\n", r"has a header but no rows"),
    ("header only, CRLF", lambda ids: "id;verdict\r\n\r\n", r"has a header but no rows"),
    ("no id column", lambda ids: "image,verdict\nx,accept\n", r"has no id column"),
    (
        "unknown verdict",
        lambda ids: f"id,verdict\n{ids[0]},accept\n{ids[1]},maybe\n",
        r"line 3 \(q-\w+\): verdict 'maybe' \(write accept, reject",
    ),
    ("verdict without id", lambda ids: "id,verdict\n,reject\n", r"line 2: verdict 'reject' but no id"),
    (
        "no verdict filled",
        lambda ids: f"id,verdict\n{ids[0]},\n{ids[1]}, \n",
        r"has 2 row\(s\) but no verdict filled in",
    ),
    (
        "conflicting duplicates",
        lambda ids: f"id,verdict\n{ids[0]},accept\n{ids[1]},reject\n{ids[0]},reject\n",
        r"id q-\w+ is accepted on line 2 but rejected on line 4",
    ),
    (
        "unknown id",
        lambda ids: f"id,verdict\n{ids[0]},accept\nq-0123456789abcdef,reject\n",
        r"1 verdict\(s\) name no question of this benchmark; line 3 \(q-0123456789abcdef\) is not a question of "
        r".*--ignore-missing",
    ),
    (
        "position ids of an old export",
        lambda ids: f"question_id,verdict\n{X}#1,reject\n",
        r"line 2 \(" + re.escape(X) + r"#1\) is not a question .*positions \(image#n\).*export the review again",
    ),
    (
        "id of another image",
        lambda ids: f"id,image,verdict\n{ids[0]},{Y},reject\n",
        r"line 2 \(q-\w+, " + re.escape(Y) + r"\) is a question of DS-MVTec/bottle/image/good/000.png",
    ),
    (
        "unquoted stray quote",
        lambda ids: f'id,verdict\n{ids[0]},"accept\n',
        r"(is not well formed|cannot be read as CSV)",
    ),
]


@pytest.mark.parametrize(("make", "message"), [c[1:] for c in BAD_CSVS], ids=[c[0] for c in BAD_CSVS])
def test_a_verdict_file_that_is_not_well_formed_changes_nothing(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    ids, _ = _rows_text(bench, tmp_path, capsys)
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(make(ids), encoding="utf-8", newline="")
    before = snapshot(tmp_path)
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 2, text
    assert re.search(message, text), text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before  # no json rewritten, no backup, no log


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", r"is not a text file \(it holds NUL bytes\)"),
        (b"\x81\x8d\x8f\x90\x9d" * 20, r"is neither UTF-8 nor Windows-1252 text; save it as 'CSV UTF-8'"),
        (b"id,verdict\n\x01\x02\x03,accept\n", r"is not a text file \(3 control characters\)"),
        (b"\xff\xfe\x00\xd8", r"starts like UTF-16 text but does not decode"),
    ],
    ids=["png", "undecodable", "control characters", "broken utf-16"],
)
def test_a_binary_file_is_refused_without_a_traceback(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_bytes(content)
    before = snapshot(tmp_path)
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 2 and re.search(message, text), text
    assert "Traceback" not in text and snapshot(tmp_path) == before


def test_a_missing_or_folder_verdict_path_and_a_shape_that_cannot_be_rewritten(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(tmp_path)
    code, text = run_cli(["review", "import", str(bench), str(tmp_path / "nope.csv")], capsys)
    assert code == 2 and "cannot read" in text and "nope.csv" in text
    code, text = run_cli(["review", "import", str(bench), str(bench)], capsys)
    assert code == 2 and "is a folder; give the review CSV file" in text
    viewer = tmp_path / "viewer"
    viewer.mkdir()
    (viewer / "metadata.csv").write_text(
        "query_image,question,options,answer,template_image,mask\n"
        f'{X},Is there any defect in the object?,"A: Yes.\nB: No.",A,,\n'
    )
    rows = export(bench, tmp_path / "review", capsys)
    verdicts = fill(rows, {(X, "Anomaly Detection"): "reject"}, tmp_path / "v.csv")
    before = snapshot(tmp_path)
    code, text = run_cli(["review", "import", str(viewer), str(verdicts)], capsys)
    assert code == 2 and "is metadata.csv; review import rewrites a benchmark json" in text
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("delimiter", "encoding", "newline"),
    [(";", "utf-8-sig", "\r\n"), (",", "utf-8-sig", "\n"), ("\t", "utf-16", "\r\n"), (";", "cp1252", "\r\n")],
    ids=["excel-csv-utf8-semicolon", "bom-comma", "excel-unicode-text", "excel-ansi-csv"],
)
def test_spreadsheet_csvs_are_read(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], delimiter: str, encoding: str, newline: str
) -> None:
    data = json.loads((bench / "mmad.json").read_text())
    data[X]["conversation"][4]["Question"] = "What could the défect cause — “in use”?"  # not ASCII
    (bench / "mmad.json").write_text(json.dumps(data), encoding="utf-8")
    rows = export(bench, tmp_path / "review", capsys)
    verdicts = fill(
        rows,
        {(X, "Defect Analysis"): "Reject", (NORMAL, "Object Details"): "reject"},
        tmp_path / "verdicts.csv",
        delimiter=delimiter,
        encoding=encoding,
        newline=newline,
    )
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 0, text
    assert f"removed {X} [Defect Analysis] 'What could the défect cause — “in use”?'" in text
    assert f"removed {NORMAL} [Object Details]" in text and "removed 2," in text
    assert "Defect Analysis" not in types_of(bench, X) and "Object Details" not in types_of(bench, NORMAL)


def test_identical_repeats_dry_run_and_ignore_missing(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(bench, tmp_path / "review", capsys)
    target = next(r for r in rows if r["image"] == X and r["type"] == "Defect Localization")
    verdicts = tmp_path / "v.csv"
    verdicts.write_text(
        f"id,verdict,note\n{target['id']},reject,first\n{target['id']},REJECT,again\nq-0123456789abcdef,accept,\n"
    )
    before = snapshot(bench)
    code, text = run_cli(["review", "import", str(bench), str(verdicts), "--dry-run"], capsys)
    assert code == 2 and "--ignore-missing" in text and snapshot(bench) == before
    code, text = run_cli(["review", "import", str(bench), str(verdicts), "--dry-run", "--ignore-missing"], capsys)
    assert code == 0 and f"would be removed {X} [Defect Localization]" in text
    assert "dry run: accepted 0, removed 1" in text and "nothing was changed" in text
    assert "not applied: line 4 (q-0123456789abcdef) is not in this benchmark" in text
    assert snapshot(bench) == before
    code, text = run_cli(["review", "import", str(bench), str(verdicts), "--ignore-missing"], capsys)
    assert code == 0 and "removed 1," in text and "not applied 1" in text
    assert "Defect Localization" not in types_of(bench, X)


def test_rejecting_every_question_of_an_image_removes_the_image(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(bench, tmp_path / "review", capsys)
    verdicts = tmp_path / "v.csv"
    fill(rows, {(NORMAL, r["type"]): "reject" for r in rows if r["image"] == NORMAL}, verdicts)
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 0 and f"removed image {NORMAL} (no question left)" in text and "removed 4," in text
    assert NORMAL not in json.loads((bench / "mmad.json").read_text())
    assert validate(bench).ok


def test_recorded_ids_survive_edits_and_duplicates_are_caught(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(bench, tmp_path / "review", capsys)
    json_path = bench / "mmad.json"
    # A first import records every question's id in the json.
    fill(rows, {(Y, "Anomaly Detection"): "reject"}, tmp_path / "first.csv")
    assert run_cli(["review", "import", str(bench), str(tmp_path / "first.csv")], capsys)[0] == 0
    data = json.loads(json_path.read_text())
    # Someone fixes a typo in a stem: the recorded id still names the question.
    data[X]["conversation"][3]["Question"] = "There is a defect in the object. What does the defect look like?"
    json_path.write_text(json.dumps(data, indent=4))
    fill(rows, {(X, "Defect Description"): "reject"}, tmp_path / "second.csv")
    code, text = run_cli(["review", "import", str(bench), str(tmp_path / "second.csv")], capsys)
    assert (
        code == 0 and f"removed {X} [Defect Description] 'There is a defect in the object. What does the defect" in text
    )
    # A question copied with its id: validate names both places, and a verdict for that id is refused.
    data = json.loads(json_path.read_text())
    copied = dict(data[X]["conversation"][0])
    data[Y]["conversation"].append(copied)
    json_path.write_text(json.dumps(data, indent=4))
    report = validate(bench)
    dup = [p for p in report.problems if p.code == "duplicate-id"]
    assert len(dup) == 1 and dup[0].key == Y and f"{X}#0" in dup[0].message
    verdicts = tmp_path / "third.csv"
    verdicts.write_text(f"id,verdict\n{copied['id']},reject\n")
    before = snapshot(bench)
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 2 and "names 2 questions" in text and "mmad validate" in text and snapshot(bench) == before


def test_model_text_cannot_become_a_spreadsheet_formula(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads((bench / "mmad.json").read_text())
    data[X]["conversation"][4]["Question"] = '=HYPERLINK("http://example.invalid","x")'
    data[X]["conversation"][4]["Options"]["B"] = "+1 more"
    (bench / "mmad.json").write_text(json.dumps(data))
    rows = export(bench, tmp_path / "review", capsys)
    row = next(r for r in rows if r["image"] == X and r["type"] == "Defect Analysis")
    assert row["question"] == '\'=HYPERLINK("http://example.invalid","x")' and row["B"] == "'+1 more"
    fill(rows, {(X, "Defect Analysis"): "reject"}, tmp_path / "v.csv")
    assert run_cli(["review", "import", str(bench), str(tmp_path / "v.csv")], capsys)[0] == 0
    assert "Defect Analysis" not in types_of(bench, X)


def test_export_and_import_name_paths_they_cannot_use(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    before = snapshot(tmp_path)
    code, text = run_cli(["review", "export", str(bench), "--out", str(a_file)], capsys)
    assert code == 2 and "is a file; give a folder" in text
    code, text = run_cli(["review", "export", str(bench), "--out", str(a_file / "sub")], capsys)
    assert code == 2 and "cannot write" in text and "choose another --out" in text and "Traceback" not in text
    code, text = run_cli(["review", "import", str(tmp_path / "nowhere"), str(a_file)], capsys)
    assert code == 2 and "no mmad.json" in text and "Traceback" not in text
    assert snapshot(tmp_path) == before


def test_a_damaged_review_log_only_loses_the_already_removed_notes(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = export(bench, tmp_path / "review", capsys)
    verdicts = fill(rows, {(X, "Defect Analysis"): "reject"}, tmp_path / "v.csv")
    assert run_cli(["review", "import", str(bench), str(verdicts)], capsys)[0] == 0
    log = bench / "mmad.json.review-log.jsonl"
    log.write_bytes(b"\xff{not json\n" + log.read_bytes() + b"[1, 2]\n")
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 0 and "was removed by an earlier import" in text and "nothing to change" in text
    log.write_text("garbage\n")
    before = snapshot(bench)
    code, text = run_cli(["review", "import", str(bench), str(verdicts)], capsys)
    assert code == 2 and "name no question of this benchmark" in text and snapshot(bench) == before
