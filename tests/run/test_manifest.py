"""run.json as a typed, versioned manifest: written whole, read back equal, older versions upgraded
(and scored, reported and resumed), a newer version or a field nobody knows refused with the file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import mmad
from mmad.cli import main
from mmad.errors import ConfigError, RunError
from mmad.records.folder import RUN_FILE
from mmad.run.config import SECTIONS, RunConfig
from mmad.run.folder import open_run
from mmad.run.manifest import SCHEMA_VERSION, Manifest, Usage, read_manifest, write_manifest
from tests.helpers.manifests import v0_run_json, v1_config, v1_run_json


@pytest.fixture(scope="module")
def small_run(mmad_json: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the random model over 12 questions (copy it before changing it)."""
    out = tmp_path_factory.mktemp("manifest") / "run"
    assert mmad.evaluate("random", mmad_json, out=out, limit=12, cache=False).complete
    return out


def _copy(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    return target


def _score_json(run: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["score", str(run), "--json", "--no-plot"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_a_run_writes_the_current_version_and_it_reads_back_equal(small_run: Path, tmp_path: Path) -> None:
    raw = json.loads((small_run / RUN_FILE).read_text())
    assert raw["schema_version"] == SCHEMA_VERSION
    manifest = read_manifest(small_run)
    assert manifest.status == "complete" and manifest.config.selection.limit == 12
    assert manifest.dataset.questions_selected == 12 and manifest.card_hash == (manifest.card or {})["hash"]
    assert manifest.usage is not None and manifest.model["name"].startswith("random")
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert json.loads((tmp_path / RUN_FILE).read_text()) == raw  # field for field, nothing added or lost


def test_a_manifest_changes_only_through_its_methods(small_run: Path) -> None:
    manifest = read_manifest(small_run)
    with pytest.raises(ValueError, match="frozen"):
        manifest.status = "running"  # type: ignore[misc]
    described = manifest.with_model({"name": "random", "engine": "ray"})
    assert described.model == {"name": "random", "engine": "ray"} and manifest.model["name"].startswith("random")
    restarted = manifest.started(manifest.config, manifest.model)
    assert (restarted.status, restarted.finished_at, restarted.created_at) == ("running", None, manifest.created_at)
    spent = Usage(cost_usd=0.25, prompt_tokens=3).plus(Usage(cost_usd=0.5, prompt_tokens=4))
    assert (spent.cost_usd, spent.prompt_tokens) == (0.75, 7)


@pytest.mark.slow
@pytest.mark.parametrize("version", [0, 1])
def test_an_older_run_json_is_scored_reported_and_resumed(
    version: int, small_run: Path, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _score_json(small_run, capsys)
    run = _copy(small_run, tmp_path / f"v{version}")
    current = read_manifest(small_run)
    data = current.config.data
    if version == 1:
        config = v1_config("random", data, limit=12)
        config["execution"]["cache"] = False
        old = v1_run_json(
            config,
            sha256=current.dataset.sha256 or "",
            selected=12,
            in_benchmark=current.dataset.questions_in_benchmark or 0,
        )
    else:
        old = v0_run_json("random", data, limit=12, selected=12)
        old["config"]["cache"] = False
        old["dataset"]["sha256"] = current.dataset.sha256
    assert "schema_version" not in old
    (run / RUN_FILE).write_text(json.dumps(old))

    opened = open_run(run)
    assert opened.status == "complete" and opened.config.selection.limit == 12 and opened.model == "random"
    assert opened.config.images.model_dump() == current.config.images.model_dump()  # old names read as recorded
    assert (opened.manifest.legacy is not None) == (version == 0)
    scored = _score_json(run, capsys)
    assert scored["average"] == expected["average"] and scored["run"]["status"] == "complete"  # type: ignore[index]
    assert main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert "random" in (tmp_path / "r.html").read_text()

    # a resume asks nothing more (every question has its record) and writes the current version
    assert main(["eval", "--resume", str(run)]) == 0
    resumed = json.loads((run / RUN_FILE).read_text())
    assert resumed["schema_version"] == SCHEMA_VERSION and resumed["created_at"] == old["created_at"]
    assert resumed["status"] == "complete" and resumed["usage"]["prompt_tokens"] >= old["usage"]["prompt_tokens"]


def test_a_newer_schema_version_is_refused_naming_the_file(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(small_run, tmp_path / "future")
    raw = json.loads((run / RUN_FILE).read_text())
    (run / RUN_FILE).write_text(json.dumps({**raw, "schema_version": SCHEMA_VERSION + 1, "a_new_field": 1}))
    with pytest.raises(
        RunError, match=rf"{run / RUN_FILE} was written by a newer mmad .*schema_version {SCHEMA_VERSION + 1}.*upgrade"
    ):
        open_run(run)
    capsys.readouterr()
    assert main(["score", str(run)]) != 0
    assert "was written by a newer mmad" in capsys.readouterr().err
    with pytest.raises(RunError, match="newer mmad"):
        mmad.evaluate("random", raw["config"]["data"], out=run, resume=True)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["config"]["prompt"].update(shot=m["config"]["prompt"].pop("shots")), "config.prompt.shot"),
        (lambda m: m["dataset"].pop("questions_selected"), "dataset.questions_selected"),
        (lambda m: m.update(staus=m.pop("status")), "staus"),
        (lambda m: m.update(status="done"), "status"),
    ],
    ids=["renamed-config-field", "missing-count", "renamed-key", "unknown-status"],
)
def test_a_field_no_reader_knows_is_refused_not_read_as_none(
    small_run: Path, tmp_path: Path, change: object, named: str
) -> None:
    run = _copy(small_run, tmp_path / "changed")
    raw = json.loads((run / RUN_FILE).read_text())
    change(raw)  # type: ignore[operator]
    (run / RUN_FILE).write_text(json.dumps(raw))
    with pytest.raises(RunError, match=rf"{run / RUN_FILE} is not a run.json this mmad can read \(.*{named}"):
        open_run(run)


# The config fields version 2 records. One renamed or removed here would leave every run.json that holds it
# unreadable: teach `mmad.run.manifest.upgraded` (or the config's own old-name reading) the change, bump
# SCHEMA_VERSION if old files need it, and update this list. Fields added with a default need nothing.
RECORDED_CONFIG = {
    "": [
        "answers",
        "connection",
        "data",
        "decoding",
        "execution",
        "images",
        "model",
        "overridden",
        "prompt",
        "recipe",
        "selection",
    ],
    "prompt": ["blind", "circular", "cot_history", "knowledge", "protocol", "shots", "similar_templates", "strategies"],
    "decoding": ["max_tokens", "temperature"],
    "images": ["detail", "image_format", "image_size", "mime", "original_images", "resize"],
    "answers": ["answer_from", "judge", "likelihood", "parser", "solver"],
    "selection": ["categories", "datasets", "errata", "exclude", "limit", "seed", "subset", "subtasks"],
    "execution": [
        "cache",
        "cache_dir",
        "concurrency",
        "engine",
        "max_cost",
        "max_errors",
        "max_retries",
        "prices",
        "ray_actors",
        "ray_address",
        "ray_gpus",
        "retry_base_s",
        "retry_max_s",
        "timeout_s",
    ],
    "connection": ["base_url", "batch_size", "device", "dtype", "extra_body", "key_env", "model_args", "text_only"],
}


def test_renaming_a_config_field_fails_here_until_old_runs_are_taught() -> None:
    now = {"": set(RunConfig.model_fields)} | {s: set(c.model_fields) for s, c in SECTIONS.items()}
    gone = {section: sorted(set(names) - now.get(section, set())) for section, names in RECORDED_CONFIG.items()}
    assert not any(gone.values()), f"run.json's config lost {gone}: see the comment above RECORDED_CONFIG"
    assert set(Manifest.model_fields) >= {"schema_version", "config", "dataset", "card", "card_hash", "status"}
    # and every older config this suite keeps still reads, under today's names
    config = RunConfig.model_validate(v1_config("random", "d", shots=0, limit=3))
    assert (config.prompt.shots, config.selection.limit, config.images.image_size) == (0, 3, 512)


def test_a_run_json_given_as_a_run_file_is_read_through_the_manifest(tmp_path: Path) -> None:
    first = tmp_path / "v0" / RUN_FILE
    first.parent.mkdir()
    first.write_text(json.dumps(v0_run_json("random", "d", shots=0, limit=5)))
    config = RunConfig.from_file(first)
    assert (config.prompt.shots, config.selection.limit, config.images.image_size) == (0, 5, 512)
    future = tmp_path / "future" / RUN_FILE
    future.parent.mkdir()
    future.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "mmad_version": "9", "config": {}}))
    with pytest.raises(ConfigError, match=rf"{future} was written by a newer mmad"):
        RunConfig.from_file(future)


def test_a_backend_description_with_numpy_numbers_and_paths_is_written_as_json(small_run: Path, tmp_path: Path) -> None:
    import numpy as np

    manifest = read_manifest(small_run).with_model(
        {"name": "expert:category", "fitted": {"thresholds": {"bottle": np.float32(0.5)}}, "weights": tmp_path}
    )
    assert manifest.model == {
        "name": "expert:category",
        "fitted": {"thresholds": {"bottle": 0.5}},
        "weights": str(tmp_path),
    }
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest


def test_a_setting_from_a_later_mmad_names_the_mmad_that_wrote_the_file(small_run: Path, tmp_path: Path) -> None:
    run = _copy(small_run, tmp_path / "later")
    raw = json.loads((run / RUN_FILE).read_text())
    raw["mmad_version"] = "99.0"
    raw["config"]["prompt"]["a_later_setting"] = True
    (run / RUN_FILE).write_text(json.dumps(raw))
    with pytest.raises(RunError, match=r"config.prompt.a_later_setting.*written by mmad 99.0, this is mmad"):
        open_run(run)
