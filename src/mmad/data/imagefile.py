"""Whether a file named by the benchmark can serve as an image, told without ever raising.

`mmad validate` reads every header; that alone passes a file cut short, so the end of a PNG
(its IEND chunk) and of a JPEG (its EOI marker) is checked too, and a file without the expected
ending, or of another format, is decoded in full to be sure. Pillow's decompression-bomb guard
(a warning above ``Image.MAX_IMAGE_PIXELS``, an error above twice that) is turned into a problem,
not a warning or a traceback: mmad's image encoder would refuse such a file during a run too.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

from PIL import Image, UnidentifiedImageError

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_END = b"\xff\xd9"
TAIL = 1024


class FileProblem(NamedTuple):
    """What is wrong with a file: a code suffix ('empty', 'too-large', ...) and a sentence."""

    code: str
    message: str


def _intact_ending(path: Path, image_format: str | None) -> bool:
    """Whether the file ends as a complete file of its format does (False: decode it to know)."""
    if image_format not in {"PNG", "JPEG", "MPO"}:
        return False
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - TAIL))
        tail = handle.read()
    if image_format == "PNG":
        return tail.endswith(PNG_END)
    return tail.rstrip(b"\x00\r\n ").endswith(JPEG_END)


def path_problem(path: Path) -> FileProblem | None:
    """Why a path that exists is not a regular file (a folder, a device, a pipe), or None."""
    if path.is_dir():
        return FileProblem("not-a-file", "is a folder, not a file")
    if not path.is_file():
        return FileProblem("not-a-file", "is not a regular file (a device, a pipe or a socket)")
    return None


def image_problem(path: Path) -> FileProblem | None:
    """Why a regular file cannot be read as an image, or None when it can."""
    try:
        if path.stat().st_size == 0:
            return FileProblem("empty", "is empty (0 bytes)")
        with warnings.catch_warnings():
            # Above MAX_IMAGE_PIXELS Pillow only warns; the file is refused all the same.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if not _intact_ending(path, image.format):
                    image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return FileProblem("too-large", f"is too large to open safely: {str(exc).rstrip('.')}")
    except UnidentifiedImageError:
        return FileProblem("unreadable", "is not an image file Pillow can read")
    except OSError as exc:
        reason = "it is cut short" if "truncated" in str(exc).lower() else str(exc)
        return FileProblem("unreadable", f"cannot be read as an image ({reason})")
    except Exception as exc:  # a malformed file makes Pillow's decoders raise almost anything
        return FileProblem("unreadable", f"cannot be read as an image ({type(exc).__name__}: {exc})")
    if width <= 0 or height <= 0:
        return FileProblem("unreadable", f"has no pixels ({width}x{height})")
    return None
