"""The resumable fetch on its own, against a plain file server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.data.transfer import fetch_url
from mmad.errors import DownloadError
from tests.helpers.hub_server import StaticFiles, running_static

DATA = bytes(range(256)) * 40


def test_a_partial_file_is_completed_with_a_range_request(tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    part.write_bytes(DATA[:1234])
    with running_static(StaticFiles({"f": DATA})) as site:
        assert fetch_url(f"{site.base}/f", part, expected_size=len(DATA), retries=0)
    assert part.read_bytes() == DATA and [r.range for r in site.requests] == ["bytes=1234-"]


def test_a_complete_partial_file_needs_no_bytes_and_an_overlong_one_starts_over(tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    part.write_bytes(DATA)
    with running_static(StaticFiles({"f": DATA})) as site:
        assert fetch_url(f"{site.base}/f", part, retries=0)  # size unknown: the server answers 416
        part.write_bytes(DATA + b"extra")
        assert fetch_url(f"{site.base}/f", part, expected_size=len(DATA), retries=0)
    assert part.read_bytes() == DATA


def test_a_server_that_ignores_the_range_gets_the_file_whole(tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    part.write_bytes(b"stale bytes")
    with running_static(StaticFiles({"f": DATA}, ignore_range=True)) as site:
        assert fetch_url(f"{site.base}/f", part, retries=0)
    assert part.read_bytes() == DATA


def test_a_partial_file_of_another_version_is_discarded(tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    with running_static(StaticFiles({"f": DATA})) as site:
        part.write_bytes(b"x" * 100)
        (tmp_path / "f.part.json").write_text('{"identity": "old-etag"}')
        assert fetch_url(f"{site.base}/f", part, identity="new-etag", retries=0)
    assert part.read_bytes() == DATA and [r.range for r in site.requests] == [None]


def test_missing_files_and_errors(tmp_path: Path) -> None:
    with running_static(StaticFiles()) as site:
        assert not fetch_url(f"{site.base}/nope", tmp_path / "a.part", missing_ok=True, retries=0)
        with pytest.raises(DownloadError, match=r"answered HTTP 404"):
            fetch_url(f"{site.base}/nope", tmp_path / "b.part", retries=2, backoff=0)
    assert len(site.requests) == 2  # a 404 is not retried
