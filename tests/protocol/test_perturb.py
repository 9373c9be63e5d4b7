"""--perturb (issue #25): each perturbation's effect on pixels, determinism per image, the query image
only (a real server sees clean templates), refused names and values, the card and the cache key."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmad.cli import main
from mmad.data.official import load_benchmark
from mmad.errors import ConfigError
from mmad.protocol.encoding import ImageSettings, encode_image
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart
from mmad.protocol.perturb import Perturbation, parse_perturb
from mmad.run.config import RunConfig
from tests.helpers.recording import RecordingModel
from tests.helpers.serving import running_server


def _textured(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A photo-like image with fine detail (a checkerboard of random greys over a gradient)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(40, 200, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    checks = ((np.indices((h, w)).sum(0) // 4) % 2)[:, :, None] * rng.integers(0, 50, (1, 1, 3))
    return Image.fromarray(np.clip(base + checks, 0, 255).astype(np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def _high_frequency(image: Image.Image) -> float:
    """Energy of the discrete Laplacian of the grey image."""
    grey = _pixels(image).mean(axis=2)
    laplacian = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float((laplacian**2).mean())


def _apply(spec: str, image: Image.Image, content: bytes = b"image") -> Image.Image:
    return parse_perturb(spec).apply(image, content)


def test_blur_lowers_the_high_frequency_energy() -> None:
    image = _textured(1)
    blurred = _apply("blur=2", image)
    assert blurred.size == image.size
    assert _high_frequency(blurred) < 0.2 * _high_frequency(image)


def test_dark_scales_the_mean_by_its_factor() -> None:
    image = _textured(2)
    ratio = _pixels(_apply("dark=0.5", image)).mean() / _pixels(image).mean()
    assert ratio == pytest.approx(0.5, abs=0.01)


def test_jpeg_changes_the_pixels_and_keeps_the_size() -> None:
    image = _textured(3)
    compressed = _apply("jpeg=30", image)
    assert compressed.size == image.size
    assert compressed.tobytes() != image.tobytes()
    assert np.abs(_pixels(compressed) - _pixels(image)).mean() < 12  # a lossy copy, not another picture


def test_noise_has_the_asked_standard_deviation() -> None:
    flat = Image.new("RGB", (128, 128), (128, 128, 128))
    residual = _pixels(_apply("noise=0.03", flat)) - 128
    assert residual.std() == pytest.approx(0.03 * 255, rel=0.05)
    assert abs(residual.mean()) < 0.3


def test_rotate_keeps_the_size_and_moves_the_pixels() -> None:
    image = Image.new("RGB", (90, 60), (0, 0, 0))
    image.paste((255, 255, 255), (60, 25, 80, 35))  # a bar right of the centre
    turned = _apply("rotate=30", image)
    assert turned.size == image.size
    before, after = _pixels(image).sum(axis=2) > 380, _pixels(turned).sum(axis=2) > 380
    assert after.any() and (before != after).mean() > 0.02
    ys, _ = np.nonzero(after)
    assert ys.mean() < 28  # counter-clockwise: the bar right of the centre goes up


def test_perturbations_apply_in_one_order_however_they_are_written() -> None:
    one = parse_perturb("jpeg=30,noise=0.03,dark=0.5,blur=2,rotate=5")
    other = parse_perturb("rotate=5, blur=2, dark=0.5, noise=0.03, jpeg=30")
    assert one == other and one.label == "rotate=5,blur=2,dark=0.5,noise=0.03,jpeg=30"
    assert list(one.as_dict()) == ["rotate", "blur", "dark", "noise", "jpeg"]


def test_the_same_image_gets_the_same_bytes_and_different_images_different_noise(tmp_path: Path) -> None:
    """Seeded from the image's content, not from run order: two encoders, two orders, one result."""
    paths = []
    for i in range(3):
        path = tmp_path / f"query{i}.png"
        _textured(10 + i).save(path)
        paths.append(path)
    settings = ImageSettings(perturb="noise=0.05,blur=1")
    perturb = parse_perturb("blur=1,noise=0.05")
    first = [encode_image(p, settings, perturb).data for p in paths]
    again = [encode_image(p, settings, perturb).data for p in reversed(paths)][::-1]
    assert first == again
    encoder = ImageEncoder(settings)
    assert [encoder.encode(ImagePart(path=str(p), role="query")).data for p in paths] == first
    # the same pixels under another name and content get other noise: the residuals differ
    copy = tmp_path / "copy.png"
    _textured(10).save(copy, pnginfo=None, compress_level=1)  # same pixels, other file bytes
    clean = _pixels(Image.open(paths[0]))
    residual = _pixels(perturb.apply(Image.open(paths[0]), paths[0].read_bytes())) - clean
    other = _pixels(perturb.apply(Image.open(copy), copy.read_bytes())) - clean
    assert not np.array_equal(residual, other)
    assert len(set(first)) == 3


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("blurr=2", "unknown perturbation 'blurr'; choose from rotate, blur, dark, noise, jpeg"),
        ("blur=0", "blur=0: blur takes a blur radius in px, above 0"),
        ("dark=1.5", "dark=1.5: dark takes a brightness factor above 0 and below 1"),
        ("jpeg=30.5", "jpeg=30.5: jpeg takes a whole JPEG quality from 1 to 95"),
        ("noise=lots", "noise=lots: noise takes a noise standard deviation"),
        ("rotate", "rotate: rotate takes an angle in degrees"),
        ("blur=1,blur=2", "blur is given twice"),
    ],
)
def test_an_unknown_name_or_a_bad_value_is_refused_naming_it(
    given: str, said: str, mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="perturb"):
        RunConfig.from_flat("mmad:random", str(mmad_json), perturb=given)
    out = tmp_path / "run"
    assert main(["eval", "-m", "mmad:random", "-d", str(mmad_json), "--out", str(out), "--perturb", given]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert said in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_model_that_reads_the_files_itself_refuses_perturb() -> None:
    with pytest.raises(ConfigError, match="--perturb would be ignored: hf:tiny reads the image files itself"):
        RunConfig.from_flat("hf:tiny", "d", perturb="blur=2")
    with pytest.raises(ConfigError, match="their files' own bytes cannot be sent"):
        RunConfig.from_flat("mmad:random", "d", perturb="blur=2", original_images=True)


def test_the_expert_honours_perturb_and_no_other_image_setting() -> None:
    """The expert reads the files itself but scores the query perturbed: its run's encoder keeps the
    perturbation (so the response cache's key changes) while its other image settings stay refused."""
    settings = RunConfig.from_flat("expert", "d", perturb="blur=2").image_settings()
    assert settings.perturb == "blur=2" and settings.original and settings.max_side is None
    assert RunConfig.from_flat("expert", "d").image_settings().perturb is None
    with pytest.raises(ConfigError, match="--image-size would be ignored: expert reads the image files itself"):
        RunConfig.from_flat("expert", "d", image_size=256)


def _sent_images(request_messages: list[object]) -> list[bytes]:
    return [
        base64.b64decode(part.data_url.partition(",")[2])
        for message in request_messages
        for part in getattr(message, "images", [])
        if part.data_url is not None
    ]


def test_only_the_query_image_is_perturbed_in_what_a_server_receives(mmad_json: Path, tmp_path: Path) -> None:
    benchmark = load_benchmark(mmad_json)
    items = {item.key: item for item in benchmark.items}
    recording = RecordingModel()
    out = tmp_path / "run"
    with running_server(recording) as server:
        argv = ["eval", "-m", "mmad:random", "-d", str(mmad_json), "--base-url", server.base_url, "--out", str(out)]
        assert main([*argv, "--limit", "4", "--no-cache", "--perturb", "dark=0.5,noise=0.02"]) == 0
    settings = RunConfig.from_flat("mmad:random", str(mmad_json), perturb="dark=0.5,noise=0.02").image_settings()
    perturb = parse_perturb("dark=0.5,noise=0.02")
    clean = ImageSettings()
    assert len(recording.requests) == 4
    for request in recording.requests:
        template, query = _sent_images(list(request.messages))
        matches = [
            item
            for item in items.values()
            if encode_image(benchmark.resolve(item.key), settings, perturb).data == query
        ]
        assert len(matches) == 1, "the query went out perturbed, as encode_image makes it"
        item = matches[0]
        assert query != encode_image(benchmark.resolve(item.key), clean).data
        assert template == encode_image(benchmark.resolve(item.templates(1)[0]), clean).data, "a clean template"
    card = json.loads((out / "run.json").read_text())["card"]
    assert card["perturb"]["applied"] == {"dark": 0.5, "noise": 0.02}
    assert card["perturb"]["images"] == "query"
    assert "perturb" not in card["images"]


def test_a_perturbed_run_has_its_own_card_hash_and_cache_key(mmad_json: Path) -> None:
    clean = RunConfig.from_flat("mmad:random", str(mmad_json))
    perturbed = RunConfig.from_flat("mmad:random", str(mmad_json), perturb="blur=2")
    assert clean.image_settings().describe() != perturbed.image_settings().describe()
    assert "perturbed blur=2" in perturbed.image_settings().describe()
    assert "perturb" not in clean.image_settings().describe()
    assert isinstance(parse_perturb(perturbed.images.perturb or ""), Perturbation)
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.card import protocol_card

    benchmark = load_benchmark(mmad_json)
    cards = [protocol_card(c, benchmark, parse_strategies([])) for c in (clean, perturbed)]
    assert "perturb" not in cards[0] and cards[1]["perturb"]["applied"] == {"blur": 2.0}
    assert cards[0]["hash"] != cards[1]["hash"]
    assert {k for k in cards[0] if cards[0][k] != cards[1].get(k)} == {"hash"}  # only perturb, added, and the hash
