"""`mmad download` against a stand-in of the Hub on 127.0.0.1 that the real huggingface_hub client talks to.

The stand-in (tests/helpers/hub_server.py) serves repo info, the tree listing and resolve/ with
302s to a "CDN" on another port, Range and the headers the client checks; the archives are built
in the test in the shapes the Hub publishes (tests/helpers/mmad_release.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mmad.data.hub import download
from mmad.data.known import KnownFile
from mmad.data.provenance import read_provenance
from mmad.data.sources import GitHubFileSource, HuggingFaceSource, LocalFolderSource
from mmad.data.validate import validate
from mmad.errors import ConfigError, DownloadError
from tests.data.conftest import tree_files
from tests.helpers.hub_server import FakeHub, StaticFiles, git_blob_id, running_hub, running_static
from tests.helpers.mmad_release import Release

PINNED = hashlib.sha1(b"pinned commit").hexdigest()
PR_COMMIT = hashlib.sha1(b"refs/pr/1 commit").hexdigest()
LATER = hashlib.sha1(b"a later commit").hexdigest()
GITHUB_REF = "0123456789abcdef0123456789abcdef01234567"


def _source(hub: FakeHub, revision: str, *, retries: int = 0) -> HuggingFaceSource:
    return HuggingFaceSource(revision=revision, endpoint=hub.endpoint, retries=retries, backoff=0.0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clutter(root: Path) -> list[str]:
    return [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if "__MACOSX" in p.parts or p.name == ".DS_Store" or p.name.startswith("._") or p.name == "ALL_DATA"
    ]


def test_per_dataset_zips_unpack_to_the_json_layout_and_a_second_run_fetches_nothing(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    out = tmp_path / "data"
    with running_hub(hub):
        result = download(out, source=_source(hub, "main"), github=False)
        assert result.revision == "main" and result.commit == PINNED
        assert tree_files(out) == sorted([*tree_files(release.tree), "domain_knowledge.json"])
        assert _clutter(out) == []  # no __MACOSX/, .DS_Store or ._ sidecar was written out
        assert (out / "mmad.json").read_bytes() == release.mmad_json
        assert not (out / ".mmad-download").exists()
        report = validate(out)
        assert report.ok, [str(p) for p in report.problems]

        provenance = read_provenance(out)
        assert provenance is not None and provenance["finished"]
        assert (provenance["repo"], provenance["revision"], provenance["commit"]) == ("jiang-cc/MMAD", "main", PINNED)
        visa = provenance["files"]["VisA.zip"]
        assert visa["sha256"] == _sha(release.zips["VisA"]) and visa["size"] == len(release.zips["VisA"])
        assert visa["check"] == "source" and visa["unpacked"] is True and visa["folders"] == ["VisA"]
        mmad = provenance["files"]["mmad.json"]
        assert mmad["sha256"] == _sha(release.mmad_json)
        assert mmad["questions"] == report.n_questions and mmad["images"] == report.n_images

        seen = len(hub.requests)
        again = download(out, source=_source(hub, "main"), github=False)
        assert again.fetched == [] and "VisA.zip" in again.skipped and "mmad.json" in again.skipped
        assert not [
            r for r in hub.requests[seen:] if r.method == "GET" and ("/resolve/" in r.path or r.server == "cdn")
        ]

    # A run on the downloaded data records where it came from in its card.
    from mmad import evaluate

    run = evaluate("random", out, out=tmp_path / "run", limit=5, cache=False)
    assert run.card["data_provenance"] == {
        "repo": "jiang-cc/MMAD",
        "revision": "main",
        "commit": PINNED,
        "mmad_json_check": mmad["check"],
        "matches_this_benchmark": True,
    }


def test_all_data_zip_of_the_readme_revision_gives_the_json_from_inside_the_archive(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PR_COMMIT, release.all_data_repo(), "refs/pr/1")
    out = tmp_path / "data"
    with running_hub(hub):
        result = download(out, source=_source(hub, "refs/pr/1"), github=False)
    assert any(r.path == "/api/datasets/jiang-cc/MMAD/revision/refs/pr/1" for r in hub.requests)
    assert result.commit == PR_COMMIT
    assert result.json_origins == {"mmad.json": "archive:ALL_DATA.zip", "domain_knowledge.json": "archive:ALL_DATA.zip"}
    assert tree_files(out) == sorted([*tree_files(release.tree), "domain_knowledge.json"])
    assert _clutter(out) == []  # the ALL_DATA/ wrapper is gone too
    assert (out / "mmad.json").read_bytes() == release.mmad_json
    provenance = read_provenance(out)
    assert provenance is not None
    assert provenance["files"]["mmad.json"]["origin"] == "archive:ALL_DATA.zip"
    assert provenance["files"]["ALL_DATA.zip"]["unpacked"] is True


@pytest.mark.parametrize("known_to_mmad", [False, True])
def test_a_revision_without_mmad_json_takes_the_github_file(
    tmp_path: Path, release: Release, online: None, known_to_mmad: bool
) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(with_json=False), "main")
    site = StaticFiles({f"jam-cc/MMAD/{GITHUB_REF}/dataset/MMAD/mmad.json": release.mmad_json})
    known = (KnownFile("mmad.json", "the test's GitHub file", git_sha1=git_blob_id(release.mmad_json)),)
    out = tmp_path / "data"
    with running_hub(hub), running_static(site):
        result = download(
            out,
            source=_source(hub, "main"),
            github=GitHubFileSource(site.base, GITHUB_REF, retries=0),
            known=known if known_to_mmad else (),
        )
        again = download(out, source=_source(hub, "main"), github=GitHubFileSource(site.base, GITHUB_REF, retries=0))
    url = f"{site.base}/jam-cc/MMAD/{GITHUB_REF}/dataset/MMAD/mmad.json"
    assert result.json_origins["mmad.json"] == again.json_origins["mmad.json"] == f"github:{url}"
    assert again.fetched == [] and len([r for r in site.requests if r.path.endswith("/mmad.json")]) == 1
    assert (out / "mmad.json").read_bytes() == release.mmad_json
    assert any("domain_knowledge.json is missing" in note for note in result.notes)
    record = read_provenance(out)["files"]["mmad.json"]  # type: ignore[index]
    assert record["origin"] == f"github:{url}"
    if known_to_mmad:
        assert record["check"] == "known" and "the test's GitHub file" in record["check_detail"]
    else:  # never claimed as checked: recorded with its observed hash, and said so
        assert record["check"] == "unverified"
        assert any("not a version of mmad.json that mmad knows" in note for note in result.notes)


def test_mmad_json_missing_everywhere_names_the_revision_and_keeps_the_images(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(with_json=False), "main")
    out = tmp_path / "data"
    with running_hub(hub), running_static(StaticFiles()) as site, pytest.raises(DownloadError) as caught:
        download(out, source=_source(hub, "main"), github=GitHubFileSource(site.base, GITHUB_REF, retries=0))
    message = str(caught.value)
    assert "mmad.json is missing from revision main of jiang-cc/MMAD" in message
    assert f"commit {PINNED[:12]}" in message and "answered 404" in message and "--revision" in message
    assert (out / "VisA/candle/test/good/000.JPG").is_file()  # what was unpacked stays
    provenance = read_provenance(out)
    assert provenance is not None and "finished" not in provenance and provenance["files"]["VisA.zip"]["unpacked"]


def test_datasets_fetches_only_those_zips_and_ds_mvtec_brings_its_templates(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    with running_hub(hub):
        only = download(tmp_path / "visa", source=_source(hub, "main"), datasets=["visa"], github=False)
        assert only.extracted == ["VisA.zip"]
        assert [p for p in os.listdir(tmp_path / "visa") if not p.endswith(".json")] == ["VisA"]
        assert not hub.body_gets("GoodsAD.zip")
        assert read_provenance(tmp_path / "visa")["datasets"] == ["VisA"]  # type: ignore[index]

        ds = download(tmp_path / "ds", source=_source(hub, "main"), datasets=["DS-MVTec"], github=False)
    assert ds.extracted == ["DS-MVTec.zip", "MVTec-AD.zip"]
    assert any("MVTec-AD train/good images as templates" in note for note in ds.notes)
    assert (tmp_path / "ds/MVTec-AD/bottle/train/good/000.png").is_file()


def test_datasets_on_a_revision_without_per_dataset_zips_says_what_it_has(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PR_COMMIT, release.all_data_repo(), "refs/pr/1")
    with running_hub(hub):
        with pytest.raises(DownloadError, match=r"refs/pr/1.*has no VisA\.zip.*ALL_DATA\.zip: drop --datasets"):
            download(tmp_path / "data", source=_source(hub, "refs/pr/1"), datasets=["VisA"], github=False)
        with pytest.raises(ConfigError, match="unknown dataset 'Visa2'; choose among DS-MVTec"):
            download(tmp_path / "data", source=_source(hub, "refs/pr/1"), datasets=["Visa2"], github=False)
        with pytest.raises(DownloadError, match="the revision does not exist"):
            download(tmp_path / "data", source=_source(hub, "no-such-branch"), github=False)
    assert not [r for r in hub.requests if "/resolve/" in r.path]  # refused before fetching anything


def test_a_misspelt_dataset_is_refused_before_the_network(tmp_path: Path) -> None:
    """Nothing listens on the port: a name error must come first, without a connection attempt."""
    unreachable = HuggingFaceSource(revision="main", endpoint="http://127.0.0.1:9", retries=0, backoff=0.0)
    with pytest.raises(ConfigError, match="unknown dataset 'Visaa'; choose among DS-MVTec"):
        download(tmp_path / "data", source=unreachable, datasets=["Visaa"], github=False)
    assert not (tmp_path / "data").exists()


def test_an_interrupted_transfer_resumes_on_the_next_run(tmp_path: Path, release: Release, online: None) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    hub.faults["VisA.zip"] = ["drop:1000"]  # the server cuts the connection after 1000 bytes
    out = tmp_path / "data"
    with running_hub(hub):
        with pytest.raises(DownloadError, match=r"stopped after 1000 bytes.*run the same command again to resume"):
            download(out, source=_source(hub, "main"), github=False)
        part = out / ".mmad-download/VisA.zip.part"
        assert part.read_bytes() == release.zips["VisA"][:1000]
        assert (out / "GoodsAD/drink_can/test/good/000.jpg").is_file()  # archives before it are unpacked
        assert "VisA.zip" not in read_provenance(out)["files"]  # type: ignore[index]

        result = download(out, source=_source(hub, "main"), github=False)
    assert result.fetched == ["VisA.zip"]  # nothing else again
    assert [r.range for r in hub.body_gets("VisA.zip")] == [None, "bytes=1000-"]
    assert tree_files(out) == sorted([*tree_files(release.tree), "domain_knowledge.json"])


def test_a_dropped_connection_is_resumed_within_the_run(tmp_path: Path, release: Release, online: None) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    hub.faults["mmad.json"] = ["drop:500"]  # a small file, served by the Hub itself (not LFS)
    hub.faults["MVTec-AD.zip"] = ["drop:700", "503"]
    with running_hub(hub):
        download(tmp_path / "data", source=_source(hub, "main", retries=3), github=False)
    assert [r.range for r in hub.body_gets("mmad.json")] == [None, "bytes=500-"]
    assert [r.range for r in hub.body_gets("MVTec-AD.zip")] == [None, "bytes=700-", "bytes=700-"]
    assert (tmp_path / "data/mmad.json").read_bytes() == release.mmad_json


def test_a_corrupt_transfer_is_refused_and_nothing_unpacked_is_lost(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    hub.corrupt.add("VisA.zip")  # altered bytes under the original LFS SHA-256
    out = tmp_path / "data"
    with running_hub(hub):
        with pytest.raises(DownloadError) as caught:
            download(out, source=_source(hub, "main"), github=False)
        message = str(caught.value)
        assert "VisA.zip from hub (hf://datasets/jiang-cc/MMAD@main" in message
        assert f"should be {_sha(release.zips['VisA'])}" in message and "nothing already in" in message
        assert not (out / ".mmad-download/VisA.zip.part").exists()  # the corrupt copy is gone
        assert (out / "mmad.json").read_bytes() == release.mmad_json
        assert (out / "MVTec-LOCO/juice_bottle/test/good/000.png").is_file()

        hub.corrupt.clear()
        download(out, source=_source(hub, "main"), github=False)
    assert validate(out).ok


def test_a_json_that_contradicts_mmads_record_for_the_commit_never_replaces_the_good_one(
    tmp_path: Path, release: Release, online: None
) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    edited = json.loads(release.mmad_json)
    first = next(iter(edited))
    edited[first]["conversation"][0]["Answer"] = "A" if edited[first]["conversation"][0]["Answer"] == "B" else "B"
    hub.add(LATER, {**release.per_dataset_repo(), "mmad.json": json.dumps(edited).encode()}, "later")
    pin = (KnownFile("mmad.json", "the test's pin", sha256=_sha(release.mmad_json), commits=(LATER,)),)
    out = tmp_path / "data"
    with running_hub(hub):
        download(out, source=_source(hub, "main"), github=False)
        with pytest.raises(
            DownloadError,
            match=r"mmad.json from hub .*mmad's record for the test's pin\) should be .*choose another --revision",
        ):
            download(out, source=_source(hub, "later"), github=False, known=pin)
    assert (out / "mmad.json").read_bytes() == release.mmad_json


@pytest.mark.subprocess
def test_the_cli_downloads_with_the_real_client_in_a_clean_process(tmp_path: Path, release: Release) -> None:
    hub = FakeHub()
    hub.add(PINNED, release.per_dataset_repo(), "main")
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    src = Path(__file__).resolve().parents[2] / "src"
    with running_hub(hub):
        env.update(HF_ENDPOINT=hub.endpoint, PYTHONPATH=str(src), HF_HOME=str(tmp_path / "hf-home"))
        done = subprocess.run(
            [sys.executable, "-m", "mmad", "download", "--out", str(tmp_path / "data"), "--revision", "main",
             "--datasets", "VisA", "--no-github"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"revision main (commit {PINNED})" in " ".join(done.stdout.split())
    assert (tmp_path / "data/VisA/candle/test/good/000.JPG").is_file()


# -- a local folder as the source, the disk check, the offline and unreachable Hub ---------------------


def _folder(tmp_path: Path) -> Path:
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "mmad.json").write_text(json.dumps({"VisA/candle/test/good/000.JPG": {"conversation": []}}))
    (hub / "domain_knowledge.json").write_text("{}")
    with zipfile.ZipFile(hub / "ALL_DATA.zip", "w") as bundle:
        for i in range(5):
            bundle.writestr(f"MMAD/VisA/candle/test/good/{i:03d}.JPG", b"x" * (1000 + i))
        bundle.writestr("MMAD/MVTec-AD/bottle/train/good/000.png", b"y" * 10)
    (hub / "unrelated.bin").write_bytes(b"z")
    return hub


def test_a_local_folder_source_fetches_unpacks_and_resumes(tmp_path: Path) -> None:
    hub = _folder(tmp_path)
    out = tmp_path / "data"
    result = download(out, source=LocalFolderSource(hub))
    assert sorted(result.fetched) == ["ALL_DATA.zip", "domain_knowledge.json", "mmad.json"]
    assert (out / "VisA/candle/test/good/004.JPG").read_bytes() == b"x" * 1004  # wrapper folder stripped
    assert (out / "MVTec-AD/bottle/train/good/000.png").exists()
    assert not (out / "unrelated.bin").exists() and not (out / ".mmad-download").exists()
    assert read_provenance(out)["files"]["mmad.json"]["origin"] == f"local:{hub.resolve()}"  # type: ignore[index]
    again = download(out, source=LocalFolderSource(hub))
    assert again.fetched == [] and sorted(again.skipped) == sorted(result.fetched)


def test_an_interrupted_local_copy_and_unpack_resume(tmp_path: Path) -> None:
    hub = _folder(tmp_path)
    out = tmp_path / "data"
    archive = (hub / "ALL_DATA.zip").read_bytes()
    (out / ".mmad-download").mkdir(parents=True)
    (out / ".mmad-download/ALL_DATA.zip.part").write_bytes(archive[:100])  # a copy cut off after 100 bytes
    (out / "VisA/candle/test/good").mkdir(parents=True)
    (out / "VisA/candle/test/good/000.JPG").write_bytes(b"x" * 1000)  # already unpacked, right size and CRC
    (out / "VisA/candle/test/good/001.JPG").write_bytes(b"?" * 1001)  # right size, wrong content
    download(out, source=LocalFolderSource(hub), keep_archives=True)
    assert (out / ".mmad-download/ALL_DATA.zip").read_bytes() == archive
    assert (out / "VisA/candle/test/good/001.JPG").read_bytes() == b"x" * 1001


def test_disk_space_is_checked_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mmad.data.hub as module

    hub = _folder(tmp_path)
    out = tmp_path / "data"

    class Usage:
        free = 10

    monkeypatch.setattr(module.shutil, "disk_usage", lambda _: Usage())
    with pytest.raises(DownloadError, match="not enough disk space"):
        download(out, source=LocalFolderSource(hub))
    assert not out.exists()


def test_offline_hub_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set"):
        download(tmp_path, source=HuggingFaceSource(revision="abc123"))


@pytest.mark.slow
def test_unreachable_hub_gives_a_clear_message(tmp_path: Path, online: None) -> None:
    """The real huggingface_hub call path, pointed at a closed local port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot reach the Hugging Face Hub"):
        download(tmp_path, source=HuggingFaceSource(endpoint=f"http://127.0.0.1:{port}"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--revision", ""], "--revision is empty; give a commit, branch or ref, or leave --revision out"),
        (["--revision", "  "], "--revision is empty"),
        (["--datasets", ""], "--datasets names no dataset; give one or more of DS-MVTec"),
        (["--datasets", " , "], "--datasets names no dataset"),
        (["--include", "VisA.zip", "--datasets", "VisA"], "--include fetches exactly the files its globs match, so"),
        (["--source", "{hub}", "--revision", "main"], "--revision main chooses a Hub commit, but --source copies a"),
    ],
)
def test_download_flags_that_would_fetch_something_else_are_refused_before_the_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    from mmad.cli import main

    hub = _folder(tmp_path)
    out = tmp_path / "data"
    code = main(["download", "--out", str(out), *(f.replace("{hub}", str(hub)) for f in flags)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == 2 and message in " ".join(text.split()), text
    assert "HF_HUB_OFFLINE" not in text and len(text.strip().splitlines()) == 1  # refused before any connection
    assert not out.exists()


def test_download_into_a_file_is_refused_before_the_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmad.cli import main

    taken = tmp_path / "data"
    taken.write_text("mine")
    code = main(["download", "--out", str(taken)])
    text = " ".join(capsys.readouterr().err.split())
    assert code == 2 and f"--out {taken} is a file; give the data root folder to fill" in text, text
    assert "HF_HUB_OFFLINE" not in text and taken.read_text() == "mine"
    with pytest.raises(ConfigError, match="is a file"):  # the library refuses it too, before copying anything
        download(taken, source=LocalFolderSource(_folder(tmp_path)))
    assert taken.read_text() == "mine"


def test_a_folder_source_short_of_a_zip_is_not_told_to_choose_a_revision(tmp_path: Path) -> None:
    hub = _folder(tmp_path)  # ALL_DATA.zip and the jsons, no per-dataset zip
    with pytest.raises(DownloadError, match=r"has no VisA\.zip") as info:
        download(tmp_path / "data", source=LocalFolderSource(hub), datasets=["VisA"])
    assert "--revision" not in str(info.value)  # refused beside --source: a folder has no revisions
    assert "put VisA.zip in it" in str(info.value)
    (hub / "ALL_DATA.zip").unlink()
    with pytest.raises(DownloadError, match=r"nor ALL_DATA\.zip") as info:
        download(tmp_path / "data", source=LocalFolderSource(hub))
    assert "--revision" not in str(info.value)
