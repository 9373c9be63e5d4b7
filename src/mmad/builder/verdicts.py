"""Read a filled-in review CSV into verdicts, refusing anything that is not well formed.

The CSV is the one `mmad review export` writes, after a person has filled its ``verdict`` column,
often in a spreadsheet. Spreadsheets save it their own way: Excel writes a UTF-8 byte-order mark
("CSV UTF-8"), Windows-1252 ("CSV"), or UTF-16 with tabs ("Unicode text"), separates fields with
``;`` where the decimal mark is a comma, and ends lines with CRLF. All of those are read; the
separator is told from the header line. What is refused, with the line and the fix: an empty
or binary file, a missing id or verdict column, no rows, a verdict other than accept/reject/blank,
a verdict without an id, and one id given two different verdicts.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from mmad.errors import AnswersFormatError

ACCEPT, REJECT = "accept", "reject"
_VERDICTS = {"": "", "accept": ACCEPT, "accepted": ACCEPT, "reject": REJECT, "rejected": REJECT}
ID_COLUMNS = ("id", "question_id")  # question_id: the column name of mmad's first exports
SEPARATORS = (",", ";", "\t")
MAX_LISTED = 5


@dataclass(frozen=True)
class Verdict:
    """One filled-in row: the question's content id, the reviewer's verdict, and what the row says it is about."""

    line: int
    uid: str
    verdict: str  # ACCEPT, REJECT, or "" (not reviewed yet)
    image: str = ""
    stem: str = ""

    def describe(self) -> str:
        """The row for a message: line, id, and the image and question it was written for."""
        about = f", {self.image}" if self.image else ""
        stem = f", {shorten(self.stem)!r}" if self.stem else ""
        return f"line {self.line} ({self.uid}{about}{stem})"


def shorten(text: str, width: int = 60) -> str:
    """A text on one line, cut to width."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _refuse(path: Path, problem: str) -> AnswersFormatError:
    return AnswersFormatError(f"{path} {problem}; nothing was changed")


def decode(path: Path, data: bytes) -> str:
    """The text of a CSV file in any encoding a spreadsheet saves; refuses empty and binary files."""
    if not data.strip(b" \t\r\n\x00"):
        raise _refuse(path, "is empty; fill the verdict column of the review.csv that `mmad review export` wrote")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text"
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise _refuse(path, "starts like UTF-16 text but does not decode as UTF-16") from None
    elif b"\x00" in data:
        raise _refuse(path, "is not a text file (it holds NUL bytes); give the review CSV")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:  # Excel's plain "CSV" is the Windows code page; the id, image and verdict columns are ASCII anyway
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                raise _refuse(path, "is neither UTF-8 nor Windows-1252 text; save it as 'CSV UTF-8'") from None
    controls = sum(ch < " " and ch not in "\t\r\n" for ch in text)
    if controls:
        raise _refuse(path, f"is not a text file ({controls} control characters); give the review CSV")
    return text


def _header(path: Path, text: str) -> tuple[str, list[str]]:
    """The separator and the normalised column names, from the first line."""
    first = text.splitlines()[0] if text else ""
    best: tuple[str, list[str]] = (",", [])
    for separator in SEPARATORS:
        names = [name.strip().strip("\ufeff").lower() for name in next(csv.reader([first], delimiter=separator))]
        if "verdict" in names:
            return separator, names
        if len(names) > len(best[1]):
            best = (separator, names)
    shown = ", ".join(repr(name) for name in best[1][:12]) or "none"
    raise _refuse(
        path,
        f"has no verdict column (its first line has the columns {shown}); "
        "fill the verdict column of the review.csv that `mmad review export` wrote",
    )


def read_verdicts(path: Path) -> list[Verdict]:
    """Every row of a review CSV as a Verdict (rows without a verdict included), checked for well-formedness."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        msg = f"{path} is a folder; give the review CSV file (review/review.csv)"
        raise AnswersFormatError(msg) from None
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror or exc}"
        raise AnswersFormatError(msg) from None
    text = decode(path, data)
    separator, names = _header(path, text)
    id_column = next((names.index(name) for name in ID_COLUMNS if name in names), None)
    if id_column is None:
        raise _refuse(path, "has no id column; export the review again with `mmad review export`")
    columns: dict[str, int] = {name: names.index(name) for name in ("verdict", "image", "question") if name in names}
    columns["id"] = id_column
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    rows: list[Verdict] = []
    errors: list[str] = []
    try:
        next(reader)
        line = reader.line_num + 1
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not any(field.strip() for field in fields):
                continue

            def cell(name: str, fields: list[str] = fields) -> str:
                index = columns.get(name)
                return fields[index].strip() if index is not None and index < len(fields) else ""

            raw = cell("verdict")
            verdict = _VERDICTS.get(raw.lower())
            row = Verdict(start, cell("id"), verdict or "", cell("image"), cell("question"))
            if verdict is None:
                errors.append(
                    f"line {start} ({row.uid or 'no id'}): verdict {raw!r} (write accept, reject, or leave it blank)"
                )
            elif verdict and not row.uid:
                errors.append(f"line {start}: verdict {raw!r} but no id")
            rows.append(row)
    except csv.Error as exc:
        raise _refuse(path, f"cannot be read as CSV at line {reader.line_num}: {exc}") from None
    if not rows:
        raise _refuse(path, "has a header but no rows; fill in the review.csv that `mmad review export` wrote")
    errors += _conflicts(rows)
    if errors:
        more = f"; and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise _refuse(path, "is not well formed: " + "; ".join(errors[:MAX_LISTED]) + more)
    if not any(row.verdict for row in rows):
        raise _refuse(
            path, f"has {len(rows)} row(s) but no verdict filled in; write accept or reject in its verdict column"
        )
    return rows


def _conflicts(rows: list[Verdict]) -> list[str]:
    """One message per id given two different verdicts (repeating the same verdict is fine)."""
    seen: dict[str, Verdict] = {}
    errors = []
    for row in rows:
        if not row.verdict or not row.uid:
            continue
        first = seen.setdefault(row.uid, row)
        if first.verdict != row.verdict:
            errors.append(
                f"id {row.uid} is {first.verdict}ed on line {first.line} but {row.verdict}ed on line {row.line}"
            )
    return errors
