"""The expert as a model on built benchmarks: categories found in linked and copied builds alike,
fitting per category, clear errors when it cannot fit, and a description that follows the fit."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch", reason="the [expert] extra is installed by `make setup`")
pytest.importorskip("skimage", reason="the [demo] extra (scikit-image photos) is installed by `make setup`")

from mmad import evaluate
from mmad.builder import build_benchmark
from mmad.data.official import load_benchmark
from mmad.data.schema import Benchmark, ImageItem
from mmad.errors import DataError
from mmad.expert.patchcore import DetectorSettings, PatchCoreExpert
from mmad.models.base import Completion, Request
from mmad.models.expert_model import ExpertModel, category_of_key, key_under_root
from mmad.protocol.messages import ImagePart, Message, PosedQuestion, TextPart
from mmad.records.record import read_records
from tests.helpers.photo_defects import write_mvtec_tree

pytestmark = pytest.mark.expert

CATEGORIES = ("brick", "coffee", "grass")
NAME = "Photos"


def _source(root: Path, seed: int = 0) -> Path:
    return write_mvtec_tree(root, seed=seed, categories=CATEGORIES, n_train=4, n_good=2, n_small=1, n_large=1, size=224)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same photos built twice: linked (the default of `mmad build`) and copied; and other photos."""
    root = tmp_path_factory.mktemp("photo_builds")
    source = _source(root / "source")
    build_benchmark(source, root / "linked", name=NAME)
    build_benchmark(source, root / "copied", name=NAME, copy=True)
    build_benchmark(_source(root / "other_source", seed=1), root / "other", name=NAME)
    return {"linked": root / "linked", "copied": root / "copied", "other": root / "other", "source": source}


@pytest.fixture(scope="module")
def expert() -> PatchCoreExpert:
    # Small input, fast fits: what these tests check does not depend on the detector's resolution.
    return PatchCoreExpert(settings=DetectorSettings(image_size=160))


def _bench(folder: Path) -> Benchmark:
    return load_benchmark(folder / "mmad.json")


def test_keys_are_read_from_the_path_as_written(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "000.png"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    link = tmp_path / "root" / "DS" / "cat" / "test" / "bad" / "000.png"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    assert key_under_root(str(link), tmp_path / "root") == "DS/cat/test/bad/000.png"
    assert key_under_root(str(outside), tmp_path / "root") is None
    assert key_under_root(str(tmp_path / "root" / "DS" / ".." / "DS" / "x.png"), tmp_path / "root") == "DS/x.png"
    assert category_of_key("DS/cat/test/bad/000.png") == "DS/cat"
    assert category_of_key("DS/x.png") is None


def test_linked_build_fits_each_category(builds: dict[str, Path], expert: PatchCoreExpert) -> None:
    linked = _bench(builds["linked"])
    item = next(i for i in linked.items if not i.is_normal)
    query_file = linked.resolve(item.key)
    # The precondition that makes this test mean something: the build links to files outside its root.
    assert query_file.is_symlink()
    assert not query_file.resolve().is_relative_to(builds["linked"].resolve())

    model = ExpertModel(expert, fit_on="category")
    model.prepare(linked)
    assert set(model.fitted) == {f"{NAME}/{c}" for c in CATEGORIES}
    thresholds = model.thresholds
    assert len({round(t, 3) for t in thresholds.values()}) == len(CATEGORIES), thresholds
    for each in linked.items:
        assert model.key_of(str(linked.resolve(each.key))) == each.key

    copied = ExpertModel(expert, fit_on="category")
    copied.prepare(_bench(builds["copied"]))
    assert copied.thresholds == pytest.approx(thresholds)
    # The same images fitted the same way: the same fitted state, wherever the build lies.
    assert copied.describe()["fitted"]["fingerprint"] == model.describe()["fitted"]["fingerprint"]


@pytest.mark.slow
def test_linked_build_evaluated_by_expert_category(builds: dict[str, Path], tmp_path: Path) -> None:
    data = builds["linked"] / "mmad.json"
    runs = {}
    for model in ("expert:category", "expert"):
        evaluate(model, data, out=tmp_path / model.replace(":", "_"), cache=False, subtasks=["Anomaly Discrimination"])
        records = read_records(tmp_path / model.replace(":", "_") / "records.jsonl")
        runs[model] = {r.image: r for r in records}
    category_run, template_run = runs["expert:category"], runs["expert"]
    assert set(category_run) == set(template_run) and len(category_run) == len(CATEGORIES) * 4

    per_category: dict[str, set[float]] = {}
    for image, record in category_run.items():
        per_category.setdefault(image.split("/")[1], set()).add(record.scores["threshold"])
    # One threshold per category, and a different one for each.
    assert all(len(values) == 1 for values in per_category.values()), per_category
    assert len({next(iter(v)) for v in per_category.values()}) == len(CATEGORIES)

    # run.json records the fitted state, and its thresholds are those the records used.
    fitted = json.loads((tmp_path / "expert_category" / "run.json").read_text())["model"]["fitted"]
    assert len(fitted["fingerprint"]) == 16
    for image, record in category_run.items():
        expected = fitted["thresholds"][f"{NAME}/{image.split('/')[1]}"]
        assert record.scores["threshold"] == pytest.approx(expected, abs=1e-4)
    # Fitted on all the category's normal images, not on the query's one template, and calibrated for
    # that bank: every score and every threshold differs from the paper's mode.
    for image, record in category_run.items():
        assert record.scores["pred_score"] != pytest.approx(template_run[image].scores["pred_score"], rel=1e-6)
        assert record.scores["threshold"] != pytest.approx(template_run[image].scores["threshold"], rel=1e-6)


def _strip_templates(folder: Path, category: str, keep: int) -> Benchmark:
    raw = json.loads((folder / "mmad.json").read_text())
    mine = [record for key, record in raw.items() if key.split("/")[1] == category]
    kept = mine[0]["random_templates"][:keep]
    for record in mine:
        record["random_templates"] = list(kept)
        record["similar_templates"] = list(kept)
    (folder / "mmad.json").write_text(json.dumps(raw))
    return _bench(folder)


@pytest.mark.parametrize("keep", [0, 1])
def test_category_mode_refuses_a_category_without_normal_images(
    builds: dict[str, Path], expert: PatchCoreExpert, tmp_path: Path, keep: int
) -> None:
    folder = tmp_path / "bench"
    shutil.copytree(builds["copied"], folder)
    bench = _strip_templates(folder, "coffee", keep)
    with pytest.raises(DataError, match=f"cannot fit on {NAME}/coffee.*{keep} normal image") as caught:
        ExpertModel(expert, fit_on="category").prepare(bench)
    assert "at least 2" in str(caught.value)
    # The paper's mode fits on each query's templates and only lacks this category's threshold.
    model = ExpertModel(expert)
    model.prepare(bench)
    assert f"{NAME}/coffee" not in model.thresholds and f"{NAME}/brick" in model.thresholds


def test_a_missing_normal_image_is_named(builds: dict[str, Path], expert: PatchCoreExpert, tmp_path: Path) -> None:
    folder = tmp_path / "bench"
    shutil.copytree(builds["linked"], folder, symlinks=True)
    bench = _bench(folder)
    template = sorted({t for i in bench.items if i.category == "grass" for t in i.random_templates})[0]
    (folder / template).unlink()
    with pytest.raises(DataError, match=f"normal image {template} of {NAME}/grass .* is missing"):
        ExpertModel(expert, fit_on="category").prepare(bench)


def _posed(question_type: str, options: dict[str, str], text: str = "") -> PosedQuestion:
    return PosedQuestion(
        question_id=f"q#{question_type}",
        image="",
        question_type=question_type,
        text=text,
        options=options,
        correct_answer="",
        number=1,
    )


DETECT = _posed("Anomaly Detection", {"A": "Yes.", "B": "No."}, "Is there any defect in the object?")


def _request(query: ImagePart, template: ImagePart) -> Request:
    text = "Question: Is there any defect in the object? \nA. Yes.\nB. No.\n"
    message = Message(role="user", parts=(template, query, TextPart(text=text)))
    return Request(messages=(message,), questions=(DETECT,))


def test_category_mode_refuses_queries_it_cannot_place(
    builds: dict[str, Path], expert: PatchCoreExpert, tmp_path: Path
) -> None:
    bench = _bench(builds["copied"])
    item = bench.items[0]
    template = ImagePart(path=str(bench.resolve(item.random_templates[0])), role="template")
    unfitted = ExpertModel(expert, fit_on="category")
    with pytest.raises(DataError, match="has not been fitted"):
        asyncio.run(unfitted.generate(_request(ImagePart(path=str(bench.resolve(item.key))), template)))

    model = ExpertModel(expert, fit_on="category")
    model.prepare(bench)
    stray = tmp_path / "stray.png"
    shutil.copy(bench.resolve(item.key), stray)
    with pytest.raises(DataError, match=f"cannot tell the category of {stray}"):
        asyncio.run(model.generate(_request(ImagePart(path=str(stray)), template)))
    # The paper's mode needs no category: it calibrates on what it has.
    plain = ExpertModel(expert)
    plain.prepare(bench)
    completion = asyncio.run(plain.generate(_request(ImagePart(path=str(stray)), template)))
    assert completion.text in {"Answer: A", "Answer: B"}


def test_describe_follows_the_fitted_state(builds: dict[str, Path], expert: PatchCoreExpert, tmp_path: Path) -> None:
    model = ExpertModel(expert, fit_on="category")
    before = model.describe()
    assert "fitted" not in before
    assert before["detector"]["image_size"] == expert.settings.image_size

    model.prepare(_bench(builds["linked"]))
    first = model.describe()
    assert set(first["fitted"]["thresholds"]) == {f"{NAME}/{c}" for c in CATEGORIES}
    fingerprint = first["fitted"]["fingerprint"]
    model.prepare(_bench(builds["linked"]))
    assert model.describe()["fitted"]["fingerprint"] == fingerprint  # deterministic

    model.prepare(_bench(builds["other"]))  # the same keys, other photos
    assert model.describe()["fitted"]["fingerprint"] != fingerprint

    # One normal image changed in place, keys untouched.
    folder = tmp_path / "bench"
    shutil.copytree(builds["copied"], folder)
    bench = _bench(folder)
    model.prepare(bench)
    assert model.describe()["fitted"]["fingerprint"] == fingerprint
    template = bench.items[0].random_templates[0]
    pixels = np.asarray(Image.open(folder / template).convert("RGB")).copy()
    pixels[:8] = 0
    Image.fromarray(pixels).save(folder / template)
    model.prepare(bench)
    assert model.describe()["fitted"]["fingerprint"] != fingerprint

    # Other detector settings, other fit.
    other = ExpertModel(PatchCoreExpert(settings=DetectorSettings(image_size=224)), fit_on="category")
    other.prepare(_bench(builds["linked"]))
    assert other.describe()["fitted"]["fingerprint"] != fingerprint
    assert other.describe()["detector"] != first["detector"]


def test_expert_names_and_model_args() -> None:
    from mmad.errors import ConfigError
    from mmad.models.registry import ModelOptions, create_model

    model = create_model("expert:category", ModelOptions(model_args={"image_size": 448, "max_normals": 4}))
    assert isinstance(model, ExpertModel)
    assert model.describe()["detector"]["image_size"] == 448 and model.describe()["max_normals"] == 4
    assert create_model("expert").describe()["fit_on"] == "templates"
    with pytest.raises(ConfigError, match="unknown expert mode 'catgory'"):
        create_model("expert:catgory")
    with pytest.raises(ConfigError, match="not size"):
        create_model("expert", ModelOptions(model_args={"size": 448}))
    with pytest.raises(ConfigError, match="multiple of 16"):
        create_model("expert", ModelOptions(model_args={"image_size": 300}))


def test_the_response_cache_never_serves_an_answer_from_another_fit(builds: dict[str, Path], tmp_path: Path) -> None:
    """The same keys and query images, one normal image changed: the category fit differs, so no reply
    cached for the old fit may be reused (the cache key holds the model's fitted fingerprint)."""
    folder = tmp_path / "bench"
    shutil.copytree(builds["copied"], folder)
    common = {"cache": True, "cache_dir": str(tmp_path / "cache"), "subtasks": ["Anomaly Discrimination"]}
    first = evaluate("expert:category", folder / "mmad.json", out=tmp_path / "first", **common)
    again = evaluate("expert:category", folder / "mmad.json", out=tmp_path / "again", **common)
    assert first.stats.cached == 0 and again.stats.cached == first.stats.done > 0

    bench = _bench(folder)
    template = bench.items[0].random_templates[0]
    pixels = np.asarray(Image.open(folder / template).convert("RGB")).copy()
    pixels[:8] = 0
    Image.fromarray(pixels).save(folder / template)
    refit = evaluate("expert:category", folder / "mmad.json", out=tmp_path / "refit", **common)
    assert refit.stats.cached == 0 and refit.stats.done == first.stats.done


@pytest.mark.slow
def test_each_category_is_fitted_once_per_process(
    builds: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Fits are keyed on the settings, the mode and the normal images' contents: the same photos built
    again (copied instead of linked) and a run of an expert that was fitted already cost no fit;
    other settings or other photos do."""
    from mmad.models import expert_model

    monkeypatch.setattr(expert_model, "_fits", {})  # as in a fresh process
    made: list[int] = []
    real = expert_model.calibrate
    monkeypatch.setattr(expert_model, "calibrate", lambda *a, **k: made.append(len(a[1])) or real(*a, **k))

    first = expert_model.fitted_expert(builds["linked"], image_size=160)
    assert first.fits_made == len(CATEGORIES) == len(made)
    again = expert_model.fitted_expert(builds["copied"] / "mmad.json", image_size=160)
    assert again.fits_made == 0 and len(made) == len(CATEGORIES)
    assert again.thresholds == first.thresholds and again.expert is first.expert  # one detector, one feature cache

    from mmad.api import evaluate_async
    from mmad.run.config import RunConfig

    config = RunConfig.from_flat("expert", str(builds["linked"] / "mmad.json"), cache=False)
    run = asyncio.run(evaluate_async(config, out=tmp_path / "run", model=again))
    assert run.complete and len(made) == len(CATEGORIES)  # the engine's prepare found every category fitted

    assert expert_model.fitted_expert(builds["other"], image_size=160).fits_made == len(CATEGORIES)
    assert expert_model.fitted_expert(builds["linked"], image_size=224).fits_made == len(CATEGORIES)
    assert expert_model.fitted_expert(builds["linked"], fit_on="category", image_size=160).fits_made == len(CATEGORIES)


def test_an_image_is_inspected_once_for_all_its_questions(
    builds: dict[str, Path], expert: PatchCoreExpert, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Questions the expert cannot answer cost no inspection; an image's AD and DL questions (one request
    each in the per-question protocol) share one."""
    bench = _bench(builds["copied"])
    item = next(i for i in bench.items if not i.is_normal)
    template = ImagePart(path=str(bench.resolve(item.random_templates[0])), role="template")
    query = ImagePart(path=str(bench.resolve(item.key)))
    model = ExpertModel(expert)
    model.prepare(bench)
    seen: list[str | None] = []
    real = model.inspect
    monkeypatch.setattr(model, "inspect", lambda q, t, p=None: seen.append(q.path) or real(q, t, p))

    def ask(question: PosedQuestion) -> Completion:
        message = Message(role="user", parts=(template, query, TextPart(text="(the rendered prompt)")))
        return asyncio.run(model.generate(Request(messages=(message,), questions=(question,))))

    analysis = ask(_posed("Defect Classification", {"A": "Stain.", "B": "Scratch."}))
    assert analysis.abstained and seen == []
    detect = ask(DETECT)
    where = ask(_posed("Defect Localization", {"A": "Top left.", "B": "Bottom right.", "C": "Center."}))
    assert detect.text in {"Answer: A", "Answer: B"} and where.text in {"Answer: A", "Answer: B", "Answer: C"}
    assert seen == [query.path]
    other = ImagePart(path=str(bench.resolve(next(i for i in bench.items if i.key != item.key).key)))
    asyncio.run(model.generate(_request(other, template)))
    assert seen == [query.path, other.path]


def test_the_description_changes_with_how_answers_are_made(expert: PatchCoreExpert) -> None:
    """describe() is part of the response cache's key: replies cached by the expert of 06f9ed3 (DL from the
    divided map, images held out only as the query) must not be served for this one."""
    described = ExpertModel(expert).describe()
    assert described["localization"] == "the undivided map"
    assert "held out of its envelope as query and bank" in described["calibration"]


@pytest.mark.slow
def test_questions_it_declines_inside_a_per_image_request_are_abstentions(
    builds: dict[str, Path], tmp_path: Path
) -> None:
    # One request holds every question of an image: the expert answers AD and DL and writes "-" for the
    # rest, which are declined (missing cells), not unreadable replies (zeros).
    out = tmp_path / "per-image"
    evaluate("expert", builds["linked"] / "mmad.json", out=out, cache=False, protocol="per-image", limit=12, seed=1)
    records = read_records(out / "records.jsonl")
    asked = {r.question_type for r in records}
    seen = {"Anomaly Detection", "Defect Localization"}
    assert asked - seen, "the sample must hold questions the expert declines"
    for record in records:
        expected = "answered" if record.question_type in seen else "abstained"
        assert record.status.value == expected, (record.question_type, record.raw_reply)


def _defective_query(
    builds: dict[str, Path], expert: PatchCoreExpert
) -> tuple[ImageItem, ImagePart, ImagePart, ExpertModel]:
    """A defective image of the copied build, its query part, its first random template, and an expert
    prepared on the build."""
    bench = _bench(builds["copied"])
    item = next(i for i in bench.items if not i.is_normal)
    template = ImagePart(path=str(bench.resolve(item.random_templates[0])), role="template")
    query = ImagePart(path=str(bench.resolve(item.key)), role="query")
    model = ExpertModel(expert)
    model.prepare(bench)
    return item, template, query, model


def test_the_expert_reads_the_structured_question_never_the_prompt_text(
    builds: dict[str, Path], expert: PatchCoreExpert
) -> None:
    _, template, query, model = _defective_query(builds, expert)

    def ask(text: str, question: PosedQuestion) -> Completion:
        message = Message(role="user", parts=(template, query, TextPart(text=text)))
        return asyncio.run(model.generate(Request(messages=(message,), questions=(question,))))

    # Worded in another language, without "Question:": the structured question is what is answered.
    answered = ask("Gibt es einen Defekt im Objekt?\nA) Ja\nB) Nein", DETECT)
    assert answered.text in {"Answer: A", "Answer: B"} and not answered.abstained
    # Worded as an anomaly question, but posed as another subtask: declined.
    english = "Question: Is there any defect in the object? \nA. Yes.\nB. No.\n"
    declined = ask(english, _posed("Defect Description", {"A": "Yes.", "B": "No."}))
    assert declined.abstained


PERTURB = "blur=2,noise=0.03"  # noise too: its seed (the file's bytes) must be the encoder's


def test_a_perturbed_query_is_scored_as_the_encoder_perturbs_it(
    builds: dict[str, Path], expert: PatchCoreExpert
) -> None:
    """--perturb in process: the expert scores the query's pixels perturbed exactly as the encoder would
    send them (the same function, the same per-image seed), against its clean templates."""
    from mmad.protocol.encoding import ImageSettings, encode_image
    from mmad.protocol.images import ImageEncoder
    from mmad.protocol.perturb import parse_perturb

    item, template, query, model = _defective_query(builds, expert)
    settings = ImageSettings(max_side=None, format="png", perturb=PERTURB)

    def score(images: ImageEncoder | None) -> float:
        message = Message(role="user", parts=(template, query, TextPart(text="(the rendered prompt)")))
        request = Request(messages=(message,), questions=(DETECT,), images=images)
        return asyncio.run(model.generate(request)).scores["pred_score"]

    clean = score(None)
    perturbed = score(ImageEncoder(settings))
    path = Path(str(query.path))
    with Image.open(path) as opened:
        by_hand = parse_perturb(PERTURB).apply(opened, path.read_bytes())
    # the pixels an API model is sent (PNG at the file's size: lossless), the same as by hand
    sent = encode_image(path, settings, parse_perturb(PERTURB))
    with Image.open(io.BytesIO(sent.data)) as decoded:
        assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(by_hand))
    calibration = model.calibration_for(category_of_key(item.key), [template])
    assert calibration is not None
    with Image.open(str(template.path)) as clean_template:
        expected = expert.predict(by_hand, [clean_template.convert("RGB")], envelope=calibration.envelope)
    assert perturbed == pytest.approx(expected.pred_score, rel=1e-6)
    assert perturbed != pytest.approx(clean, rel=1e-3)
    assert score(ImageEncoder(ImageSettings())) == pytest.approx(clean, rel=1e-6)  # no --perturb: the clean pixels


@pytest.mark.slow
def test_the_served_expert_scores_the_query_as_sent_perturbed_once(
    builds: dict[str, Path], expert: PatchCoreExpert, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mmad serve -m expert` asked with --perturb: the query arrives perturbed by the client's encoder and
    the expert scores it as it came (perturbing it again would blur it twice)."""
    from mmad.api import evaluate_async
    from mmad.protocol.perturb import parse_perturb
    from mmad.run.config import RunConfig
    from mmad.serve.server import ChatServer, serve_in_thread

    model = ExpertModel(expert)
    scored: list[bytes] = []
    real = expert.predict
    monkeypatch.setattr(
        expert, "predict", lambda query, *a, **k: scored.append(np.asarray(query).tobytes()) or real(query, *a, **k)
    )
    bench = _bench(builds["copied"])
    with serve_in_thread(ChatServer(model, model_name="expert")) as server:
        config = RunConfig.from_flat(
            "mmad:expert",
            str(builds["copied"] / "mmad.json"),
            base_url=server.base_url,
            cache=False,
            limit=3,
            seed=4,
            image_size=None,
            image_format="png",
            detail=None,
            perturb=PERTURB,
        )
        run = asyncio.run(evaluate_async(config, out=tmp_path / "run"))
    assert run.complete
    expected = set()
    for record in read_records(tmp_path / "run" / "records.jsonl"):
        path = bench.resolve(record.image)
        with Image.open(path) as opened:
            expected.add(np.asarray(parse_perturb(PERTURB).apply(opened, path.read_bytes())).tobytes())
    assert scored and set(scored) <= expected


def test_a_perturbed_run_of_the_expert_scores_other_pixels_and_is_never_served_a_clean_reply(
    builds: dict[str, Path], tmp_path: Path
) -> None:
    """`mmad eval -m expert --perturb`: its run's encoder holds the perturbation (it was dropped with the
    image settings the expert does not read), so the scores change and so does the response cache's key."""
    common = {"cache": True, "cache_dir": str(tmp_path / "cache"), "subtasks": ["Anomaly Discrimination"]}
    data = builds["copied"] / "mmad.json"
    clean = evaluate("expert", data, out=tmp_path / "clean", **common)
    dark = evaluate("expert", data, out=tmp_path / "dark", perturb="dark=0.5", **common)
    assert dark.stats.cached == 0 and dark.stats.done == clean.stats.done > 0

    def scores(folder: Path) -> dict[str, float]:
        return {r.question_id: r.scores["pred_score"] for r in read_records(folder / "records.jsonl")}

    before, after = scores(tmp_path / "clean"), scores(tmp_path / "dark")
    assert before.keys() == after.keys() and before != after
    card = json.loads((tmp_path / "dark" / "run.json").read_text())["card"]
    assert card["perturb"]["applied"] == {"dark": 0.5} and card["images"] == {}  # its other image settings: none
