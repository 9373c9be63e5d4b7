"""Image preprocessing, a recorded setting of every run, and a per-run cache so each image is
read and encoded once.

The default is what the official API scripts do: scale so the longest side is 512 px (small
images are scaled up too), re-encode as JPEG, send with ``detail: low``. The official code uses
OpenCV's INTER_AREA and default JPEG quality (95); we use Pillow's box filter to shrink (area
averaging, like INTER_AREA), bilinear to enlarge, quality 95, so the bytes differ from OpenCV's.
``max_side=None`` keeps the size; ``original=True`` sends the file's bytes.

Two settings exist for the recipes that reproduce an official script:

- ``resize="official"``: the scripts' size arithmetic, ``scale = min(512 / w, 512 / h)`` and
  ``int(w * scale), int(h * scale)``: ``int()`` truncates, so a 1,700 px side becomes 511
  (``1700 * (512 / 1700) == 511.99999999999994``), where mmad's default rounds to 512.
- ``mime="extension"``: the data URL's MIME type named after the file's extension, as
  ``GPT4/gpt4o.py`` and ``Gemini/gemini_query.py`` do (JPEG bytes of a .png file are labelled
  ``image/png``); ``"content"`` (default) names what the bytes are.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

from mmad.errors import DataError
from mmad.protocol.messages import ImagePart

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

    def describe(self) -> str:
        """One line for logs and reports."""
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


def encode_image(path: Path, settings: ImageSettings) -> EncodedImage:
    """Read and prepare one image file."""
    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as opened:
            if settings.original:
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


def load_image(part: ImagePart) -> Image.Image:
    """An image part's pixels, as RGB (from its file or its data URL)."""
    if part.path is not None:
        with Image.open(part.path) as image:
            return image.convert("RGB")
    if part.data_url is None:
        msg = "an image part has neither a path nor a data URL"
        raise DataError(msg)
    with Image.open(io.BytesIO(decode_data_url(part.data_url))) as image:
        return image.convert("RGB")


DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
DEFAULT_AHEAD = 128


class ImageEncoder:
    """Encodes each image once per run; thread-safe.

    Memory is bounded by bytes, not by the number of questions: the encoded images kept for reuse
    (templates shown with many queries, an image asked about several times) are evicted, least
    recently used first, past ``max_bytes``; a prefetch thread stays at most ``ahead`` images in
    front of the requests being built.
    """

    def __init__(self, settings: ImageSettings, max_bytes: int | None = None) -> None:
        self.settings = settings
        self._cache: OrderedDict[str, EncodedImage] = OrderedDict()
        self._lock = threading.Lock()
        self._max_bytes = DEFAULT_CACHE_BYTES if max_bytes is None else max_bytes
        self._bytes = 0
        self._order: dict[str, int] = {}  # prefetch order of each path, as the prefetcher reaches it
        self._position = -1  # the furthest path (in prefetch order) a request has asked for
        self._stop = threading.Event()
        self.encoded = 0

    @property
    def cached_bytes(self) -> int:
        """Bytes of encoded images held for reuse now."""
        return self._bytes

    @property
    def cached_images(self) -> int:
        """Encoded images held for reuse now."""
        return len(self._cache)

    def encode(self, part: ImagePart, *, asked: bool = True) -> EncodedImage:
        """The prepared form of an image part."""
        if part.data_url is not None:
            data = decode_data_url(part.data_url)
            mime = part.data_url[5 : part.data_url.index(";")]
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
            return EncodedImage(data, mime, width, height, hashlib.sha256(data).hexdigest())
        if part.path is None:
            msg = "an image part has neither a path nor a data URL"
            raise DataError(msg)
        with self._lock:
            if asked:
                self._position = max(self._position, self._order.get(part.path, -1))
            hit = self._cache.get(part.path)
            if hit is not None:
                self._cache.move_to_end(part.path)
                return hit
        encoded = encode_image(Path(part.path), self.settings)
        with self._lock:
            self.encoded += 1
            if part.path not in self._cache:
                self._cache[part.path] = encoded
                # Counted with the data URL it will get when a request is built from it.
                self._bytes += encoded.size_in_memory
            while self._bytes > self._max_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._bytes -= evicted.size_in_memory
        return encoded

    def prefetch(self, paths: Iterable[str], *, ahead: int = DEFAULT_AHEAD) -> threading.Thread:
        """Encode images in a background thread, in the order they will be needed.

        Decoding, resizing and JPEG encoding run in Pillow's C code without the GIL, so this
        uses a second core while the event loop sends requests. It waits whenever it is `ahead`
        images in front of the furthest image a request has asked for.
        """

        def work() -> None:
            seen: set[str] = set()
            for path in paths:
                if path in seen:
                    continue
                with self._lock:
                    index = len(seen)
                    self._order[path] = index
                seen.add(path)
                while self._too_far_ahead(index, ahead) and not self._stop.is_set():
                    self._stop.wait(0.01)
                if self._stop.is_set():
                    return
                with self._lock:
                    if path in self._cache:
                        continue
                try:
                    self.encode(ImagePart(path=path), asked=False)
                except DataError:
                    continue  # the request that needs it will report the error

        thread = threading.Thread(target=work, name="mmad-image-prefetch", daemon=True)
        thread.start()
        return thread

    def _too_far_ahead(self, index: int, ahead: int) -> bool:
        waiting = index - self._position
        if waiting > ahead:
            return True
        # Large images (original bytes): never prefetch more than half the budget, or the cache
        # would evict prefetched images before their requests use them.
        average = self._bytes / len(self._cache) if self._cache else 0
        return waiting > 1 and waiting * average > self._max_bytes / 2

    def stop(self) -> None:
        """End a prefetch thread."""
        self._stop.set()

    def digests(self, parts: list[ImagePart]) -> dict[str, str]:
        """Content digests of path-based image parts, for request hashing."""
        return {p.path: self.encode(p).digest for p in parts if p.path is not None}

    def digests_if_encoded(self, parts: list[ImagePart]) -> dict[str, str] | None:
        """`digests`, when every image is already encoded (no I/O, so no thread needed); else None."""
        found: dict[str, str] = {}
        with self._lock:
            for part in parts:
                if part.path is None:
                    continue
                hit = self._cache.get(part.path)
                if hit is None:
                    return None
                self._position = max(self._position, self._order.get(part.path, -1))
                found[part.path] = hit.digest
        return found
