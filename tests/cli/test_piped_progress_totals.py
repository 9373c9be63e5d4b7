"""Piped progress lines say how far and how long: `mmad validate DATA` without a terminal printed "checking: 1",
then nothing until "checking: 8297" (its bar had no total). The total now comes first, known once the json
is read (and `mmad build`'s before a category's templates, its unreadable images counted as done)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

import mmad
from mmad.cli import main
from mmad.cli.common import CliProgress, simple_progress
from tests.helpers.ad_trees import make_tree


def _images(data: Path, capsys: pytest.CaptureFixture[str]) -> int:
    capsys.readouterr()
    main(["validate", str(data), "--json"])
    n_images: int = json.loads(capsys.readouterr().out)["n_images"]
    return n_images


def test_a_piped_validate_says_n_of_the_total(mmad_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    total = _images(mmad_json, capsys)
    assert total > 1
    main(["validate", str(mmad_json)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("checking: ")]
    assert lines[0] == f"checking: 0/{total} (0%)", err  # the total before the first item is checked
    assert lines[-1].startswith(f"checking: {total}/{total} (100%), done in "), err
    assert all(re.match(rf"checking: \d+/{total} ", line) for line in lines), lines


def test_validates_lines_say_the_time_left(mmad_json: Path) -> None:
    """A line every 5 s of a long check, each with the count, the share and the time left."""
    now = [0.0]
    log = io.StringIO()
    piped = Console(file=log, width=120)  # not a terminal
    with CliProgress(*simple_progress().columns, console=piped, every_s=5.0, clock=lambda: now[0]) as bar:
        task = bar.add_task("checking", total=None)

        def checked(done: int) -> None:
            now[0] = done * 1.0  # a second an item
            bar.update(task, completed=done)

        report = mmad.validate(mmad_json, progress=checked, on_total=lambda n: bar.update(task, total=n))
    total = report.n_images
    lines = log.getvalue().splitlines()
    middle = [line for line in lines if not line.startswith((f"checking: 0/{total} ", f"checking: {total}/"))]
    assert middle, lines
    assert all(re.fullmatch(rf"checking: \d+/{total} \(\d+%\), ~0:\d\d:\d\d left", line) for line in middle), lines


def test_validate_takes_a_progress_hook_of_one_argument_as_before(mmad_json: Path) -> None:
    seen: list[int] = []
    report = mmad.validate(mmad_json, progress=seen.append)
    assert seen == list(range(1, report.n_images + 1))


def test_a_piped_build_says_its_total_first_and_ends_on_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_tree(tmp_path / "source", "goodsad")
    # The last test image built (categories, then defect types, then names, in order) cannot be read: skipped,
    # and still counted as done
    (source / "tablet" / "test" / "scratch" / "zzz.jpg").write_bytes(b"not a jpeg")
    masks = source / "tablet" / "ground_truth" / "scratch"
    (masks / "zzz.png").write_bytes((masks / "000.png").read_bytes())
    capsys.readouterr()
    main(["build", str(source), "--out", str(tmp_path / "bench")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("building images: ")]
    assert lines, err
    total = int(lines[0].split("/")[1].split(" ")[0])
    assert lines[0] == f"building images: 0/{total} (0%)", lines
    assert lines[-1].startswith(f"building images: {total}/{total} (100%), done in "), lines


def test_thumbnails_say_their_total_before_the_first_is_made(tmp_path: Path) -> None:
    from PIL import Image

    from mmad.report.samples import Thumbnails

    thumbnails = Thumbnails()
    for i in range(3):
        Image.new("RGB", (40, 30), (60 * i, 80, 120)).save(tmp_path / f"{i}.png")
        thumbnails.add(tmp_path / f"{i}.png")
    calls: list[tuple[int, int]] = []
    thumbnails.render(16, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
