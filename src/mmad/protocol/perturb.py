"""Image perturbations for robustness runs: ``--perturb blur=2,dark=0.5,jpeg=30,noise=0.03,rotate=5``.

Each is a pure function of a PIL image and its parameter, applied to the query image only (never
a template: the reference a factory keeps is clean, the camera on the line is what degrades),
on the file's own pixels, before the protocol's resizing and encoding:

- ``blur=R``: Gaussian blur of radius R px (0 < R <= 50): a defocused lens;
- ``dark=F``: every channel times F (0 < F < 1): a dimmer lamp; the mean falls to about F of itself;
- ``jpeg=Q``: a JPEG round trip at quality Q (1 <= Q <= 95, whole): a cheaper camera's compression;
- ``noise=S``: Gaussian noise of standard deviation S x 255 per channel (0 < S <= 0.5): sensor noise;
- ``rotate=D``: a rotation by D degrees (-180 <= D <= 180, not 0) about the centre, size kept,
  the corners filled black: a part placed askew.

Given together they apply in one fixed order whatever order they are written in: rotate, blur,
dark, noise, jpeg (the part, the optics, the light, the sensor, the compression). Noise is the only
random one; its generator is seeded from the image's content (SHA-256 of the file) and the
perturbation, so an image gets the same pixels in any run, in any order, on any machine.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from mmad.errors import ConfigError

ORDER = ("rotate", "blur", "dark", "noise", "jpeg")
"""The order perturbations apply in, whatever order they are given in."""

_RANGES: dict[str, tuple[float, float, str]] = {
    "blur": (0.0, 50.0, "a blur radius in px, above 0 and at most 50 (e.g. blur=2)"),
    "dark": (0.0, 1.0, "a brightness factor above 0 and below 1 (e.g. dark=0.5)"),
    "jpeg": (1.0, 95.0, "a whole JPEG quality from 1 to 95 (e.g. jpeg=30)"),
    "noise": (0.0, 0.5, "a noise standard deviation as a fraction of 255, above 0 and at most 0.5 (e.g. noise=0.03)"),
    "rotate": (-180.0, 180.0, "an angle in degrees from -180 to 180, not 0 (e.g. rotate=5)"),
}
EXAMPLE = "blur=2,dark=0.5,jpeg=30,noise=0.03,rotate=5"


@dataclass(frozen=True)
class Perturbation:
    """Named perturbations with their parameters, in application order (`ORDER`)."""

    steps: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        """The canonical text (``blur=2,dark=0.5``): in ORDER, numbers without trailing zeros."""
        return ",".join(f"{name}={_number(value)}" for name, value in self.steps)

    def as_dict(self) -> dict[str, float]:
        """The protocol card's form: name -> parameter, in application order."""
        return dict(self.steps)

    def apply(self, image: Image.Image, content: bytes) -> Image.Image:
        """The perturbed image (RGB, the same size); ``content`` (the file's bytes) seeds the noise."""
        out = image.convert("RGB")
        for name, value in self.steps:
            out = _APPLY[name](out, value, self._seed(content))
        return out

    def _seed(self, content: bytes) -> int:
        digest = hashlib.sha256(hashlib.sha256(content).digest() + self.label.encode()).digest()
        return int.from_bytes(digest[:8], "big")


def parse_perturb(text: str) -> Perturbation:
    """``blur=2,dark=0.5`` as a Perturbation; ConfigError naming the piece and the valid form otherwise
    (the caller names the setting: ``--perturb`` or ``perturb``)."""
    given: dict[str, float] = {}
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        name, sep, raw = (s.strip() for s in piece.partition("="))
        if name not in _RANGES:
            choices = ", ".join(ORDER)
            msg = f"unknown perturbation {name!r}; choose from {choices} as NAME=VALUE, e.g. {EXAMPLE}"
            raise ConfigError(msg)
        low, high, meaning = _RANGES[name]
        try:
            value = float(raw) if sep else math.nan
        except ValueError:
            value = math.nan
        valid = math.isfinite(value) and low <= value <= high
        if name in ("blur", "dark", "noise"):
            valid = valid and value > low
        if name == "dark":
            valid = valid and value < high
        if name == "jpeg":
            valid = valid and value.is_integer()
        if name == "rotate":
            valid = valid and value != 0
        if not valid:
            msg = f"{piece}: {name} takes {meaning}"
            raise ConfigError(msg)
        if name in given:
            msg = f"{name} is given twice; give each perturbation once"
            raise ConfigError(msg)
        given[name] = value
    if not given:
        msg = f"{text!r} names no perturbation; give NAME=VALUE pairs, e.g. {EXAMPLE}"
        raise ConfigError(msg)
    return Perturbation(tuple((name, given[name]) for name in ORDER if name in given))


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def rotate(image: Image.Image, degrees: float, _seed: int = 0) -> Image.Image:
    """Turned by `degrees` counter-clockwise about the centre; the size kept, the corners black."""
    return image.rotate(degrees, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=(0, 0, 0))


def blur(image: Image.Image, radius: float, _seed: int = 0) -> Image.Image:
    """A Gaussian blur of `radius` px."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def dark(image: Image.Image, factor: float, _seed: int = 0) -> Image.Image:
    """Every channel times `factor`."""
    pixels = np.asarray(image, dtype=np.float32) * factor
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Gaussian noise of standard deviation `sigma` x 255 on every channel, from a generator seeded with `seed`."""
    pixels = np.asarray(image, dtype=np.float32)
    noisy = pixels + np.random.default_rng(seed).normal(0.0, sigma * 255.0, pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: float, _seed: int = 0) -> Image.Image:
    """A JPEG round trip at `quality`."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


_APPLY = {"rotate": rotate, "blur": blur, "dark": dark, "noise": noise, "jpeg": jpeg}
