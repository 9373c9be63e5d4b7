"""One image file made ready to send: read, (perturbed,) resized, re-encoded; also what an image
worker process runs.

A worker process imports this module alone (Pillow, and the perturbations only for a perturbed
query), not the rest of mmad: each of a run's workers paid 0.25 s of imports for the prompt
models and numpy it never used (issue #22). `mmad.protocol.images` holds the settings' meaning
and the per-run encoder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from PIL import Image, UnidentifiedImageError

from mmad.errors import DataError

if TYPE_CHECKING:
    from mmad.protocol.perturb import Perturbation

_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
}
# GPT4/gpt4o.py and Gemini/gemini_query.py `get_mime_type`: .png, .jpg and .jpeg by name (lower-cased).
# Their fallbacks differ (image/jpeg, image/png); MMAD's files are all .png, .jpg or .JPG.
_EXTENSION_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class ImageSettings:
    """How images are prepared before they are sent."""

    max_side: int | None = 512
    format: Literal["jpeg", "png"] = "jpeg"
    quality: int = 95
    detail: Literal["low", "high", "auto"] | None = "low"
    original: bool = False
    resize: Literal["mmad", "official"] = "mmad"
    mime: Literal["content", "extension"] = "content"
    perturb: str | None = None
    """The query images' perturbations (`mmad.protocol.perturb`), as their canonical text; None: none."""

    def describe(self) -> str:
        """One line for logs and reports (and the response cache's key)."""
        if self.perturb:  # only when set, so that other runs keep their cache keys
            return f"{replace(self, perturb=None).describe()}, query images perturbed {self.perturb}"
        if self.original:
            return f"original bytes, detail={self.detail}"
        size = f"longest side {self.max_side}px" if self.max_side else "original size"
        if self.max_side and self.resize == "official":
            size += " (official int() sizes)"
        label = ", MIME by extension" if self.mime == "extension" else ""
        return f"{size}, {self.format.upper()} q{self.quality}, detail={self.detail}{label}"


def resized_size(width: int, height: int, max_side: int, resize: str = "mmad") -> tuple[int, int]:
    """The size an image is scaled to so its longest side is ``max_side`` (enlarging too).

    ``official`` is the scripts' arithmetic (GPT4/gpt4o.py ``encode_image_to_base64``):
    ``int()`` truncates both sides; mmad rounds them.
    """
    if resize == "official":
        scale = min(max_side / width, max_side / height)
        return max(1, int(width * scale)), max(1, int(height * scale))
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class EncodedImage:
    """An image ready to send; its base64 data URL is made once, when first asked for (a template
    goes out with many queries), and counts against the encoder's memory budget from then on."""

    data: bytes
    mime: str
    width: int
    height: int
    digest: str
    _url: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def data_url(self) -> str:
        """The image as a base64 data URL."""
        if not self._url:
            self._url.append(f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}")
        return self._url[0]

    @property
    def size_in_memory(self) -> int:
        """The bytes this image holds with its data URL (counted whether or not the URL is made yet)."""
        return len(self.data) + (len(self.data) + 2) // 3 * 4 + len(self.mime) + 13


def encode_image(path: Path, settings: ImageSettings, perturb: Perturbation | None = None) -> EncodedImage:
    """Read and prepare one image file; `perturb` (a query image's) changes its pixels first."""
    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as opened:
            if settings.original and perturb is None:
                # The file's own bytes go out: its header gives the size, and decoding every pixel
                # (milliseconds per photo) would only check what `mmad validate` checks.
                mime = _MIME.get(path.suffix.lower(), "image/png")
                return EncodedImage(raw, mime, opened.width, opened.height, hashlib.sha256(raw).hexdigest())
            image = opened.convert("RGB")
    except UnidentifiedImageError as exc:  # its own text names an in-memory buffer, not the file
        kind = "an empty file" if not raw else "not an image format Pillow reads (damaged, or another kind of file)"
        msg = f"cannot read image {path}: {kind}; run `mmad validate` on the data root"
        raise DataError(msg) from exc
    except (OSError, ValueError) as exc:
        msg = f"cannot read image {path}: {exc}; run `mmad validate` on the data root"
        raise DataError(msg) from exc
    if perturb is not None:
        image = perturb.apply(image, raw)
    if settings.max_side:
        size = resized_size(image.width, image.height, settings.max_side, settings.resize)
        if size != image.size:
            shrink = size[0] * size[1] < image.width * image.height
            image = image.resize(size, Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if settings.format == "jpeg":
        image.save(buffer, format="JPEG", quality=settings.quality)
        mime = "image/jpeg"
    else:
        image.save(buffer, format="PNG")
        mime = "image/png"
    if settings.mime == "extension":
        mime = _EXTENSION_MIME.get(path.suffix.lower(), mime)
    data = buffer.getvalue()
    return EncodedImage(data, mime, image.width, image.height, hashlib.sha256(data).hexdigest())


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 data URL."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        msg = "only base64 data URLs are accepted for images"
        raise DataError(msg)
    return base64.b64decode(payload)


def quiet_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group; the run reports the interruption, not each worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A run killed outright (SIGKILL, the OOM killer) cannot shut its pool down, and a worker waiting
    # for work would wait for ever: it leaves once its parent (the run's pid, given: it may be gone
    # before this worker has started) is gone.

    def leave_with_the_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=leave_with_the_parent, name="mmad-image-worker-watch", daemon=True).start()


def encode_in_worker(path: str, settings: ImageSettings, perturbed: bool) -> EncodedImage:
    perturb = None
    if perturbed and settings.perturb:
        from mmad.protocol.perturb import parse_perturb

        perturb = parse_perturb(settings.perturb)
    encoded = encode_image(Path(path), settings, perturb)
    _ = encoded.data_url  # base64 here too, off the event loop's process
    return encoded
