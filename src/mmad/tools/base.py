"""What a tool is: a name, a JSON schema of its arguments, validation, and a result.

A tool never raises at the model: bad arguments (and anything the tool cannot do for this image)
come back as a `ToolResult` with ``error`` set, whose text tells the model what to send instead.
Tools are synchronous and CPU-bound; the loop runs them in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from mmad.errors import DataError, MissingExtraError
from mmad.protocol.agent import open_rgb as open_rgb  # the tools' reader is the agent protocol's
from mmad.protocol.messages import ImagePart

if TYPE_CHECKING:
    from mmad.data.schema import ImageItem
    from mmad.tools.toolbox import Toolbox


class ToolArgumentError(ValueError):
    """A tool's arguments are wrong; the message is sent back to the model, never raised to the user."""


@dataclass(frozen=True)
class ToolResult:
    """What a tool gives back: text for the model, images for the next turn, a summary for the record."""

    text: str
    summary: str
    images: tuple[ImagePart, ...] = ()
    error: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    """Machine-readable facts (the expert's score and box), kept in the record."""

    @classmethod
    def failure(cls, tool: str, message: str) -> ToolResult:
        """An error the model reads (it may call again with better arguments)."""
        return cls(text=f"error: {message}", summary=f"{tool}: error: {message}", error=True)


@dataclass(frozen=True)
class ToolContext:
    """One question's view of the tools: the run's toolbox and the image under inspection."""

    toolbox: Toolbox
    item: ImageItem

    @property
    def query_path(self) -> Path:
        """The query image's file."""
        return self.toolbox.benchmark.resolve(self.item.key)


class Tool(ABC):
    """One tool the model may call."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]
    """The JSON schema of the arguments (an object), as OpenAI function calling takes it."""

    def spec(self) -> dict[str, Any]:
        """The tool in the OpenAI tools format (``{"type": "function", "function": ...}``)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def available(self, toolbox: Toolbox) -> str | None:
        """Why the tool cannot be offered in this run (a missing extra or file), or None."""
        return None

    @abstractmethod
    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments, checked and normalised; ToolArgumentError says what is wrong."""

    @abstractmethod
    def run(self, context: ToolContext, args: dict[str, Any]) -> ToolResult:
        """Do the work on validated arguments."""

    def call(self, context: ToolContext, raw: Any) -> ToolResult:
        """Validate and run: a JSON string or an object of arguments; every failure becomes an error result."""
        try:
            args = self.validate(parse_arguments(raw))
            return self.run(context, args)
        except ToolArgumentError as exc:
            return ToolResult.failure(self.name, f"{exc}; arguments: {json.dumps(self.parameters['properties'])}")
        except (DataError, MissingExtraError) as exc:
            return ToolResult.failure(self.name, str(exc))


def parse_arguments(raw: Any) -> dict[str, Any]:
    """A call's arguments as an object: OpenAI sends a JSON string, the text protocol an object."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            msg = f"the arguments are not valid JSON ({exc.msg})"
            raise ToolArgumentError(msg) from exc
        except ValueError as exc:  # an integer of more digits than Python converts
            msg = "a number in the arguments has thousands of digits: give fractions from 0 to 1"
            raise ToolArgumentError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"the arguments must be a JSON object, not {type(raw).__name__}"
        raise ToolArgumentError(msg)
    return raw


def no_unknown(args: dict[str, Any], known: set[str]) -> None:
    """ToolArgumentError naming arguments the tool does not take."""
    unknown = sorted(set(args) - known)
    if unknown:
        msg = f"unknown argument(s) {', '.join(unknown)}"
        raise ToolArgumentError(msg)


BOX_PROPERTIES: dict[str, Any] = {
    name: {"type": "number", "minimum": 0, "maximum": 1, "description": description}
    for name, description in (
        ("x0", "left edge, as a fraction of the image width (0 = left)"),
        ("y0", "top edge, as a fraction of the image height (0 = top)"),
        ("x1", "right edge, as a fraction of the image width (1 = right)"),
        ("y1", "bottom edge, as a fraction of the image height (1 = bottom)"),
    )
}
BOX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": BOX_PROPERTIES,
    "required": ["x0", "y0", "x1", "y1"],
    "additionalProperties": False,
}
MIN_BOX = 0.02
"""The smallest box side, as a fraction of the image: a narrower crop is a few pixels blown up."""


def validate_box(args: dict[str, Any]) -> dict[str, Any]:
    """x0, y0, x1, y1 as numbers, clamped to [0, 1], each far side past its near side."""
    no_unknown(args, {"x0", "y0", "x1", "y1"})
    missing = [name for name in ("x0", "y0", "x1", "y1") if name not in args]
    if missing:
        msg = f"missing {', '.join(missing)}: give the box as x0, y0, x1, y1, fractions of the image from 0 to 1"
        raise ToolArgumentError(msg)
    box = {}
    for name in ("x0", "y0", "x1", "y1"):
        value = args[name]
        number = _finite(value)
        if number is None:
            msg = f"{name} must be a number from 0 to 1, not {_shown(value)}"
            raise ToolArgumentError(msg)
        box[name] = min(1.0, max(0.0, number))
    if box["x1"] - box["x0"] < MIN_BOX or box["y1"] - box["y0"] < MIN_BOX:
        msg = (
            f"the box [{box['x0']:g}, {box['y0']:g}, {box['x1']:g}, {box['y1']:g}] (clamped to 0-1) is empty or "
            f"thinner than {MIN_BOX:g}: x1 must exceed x0 and y1 exceed y0"
        )
        raise ToolArgumentError(msg)
    return box


def _finite(value: Any) -> float | None:
    """A JSON number as a finite float, or None (a word, a bool, NaN, infinity, an integer too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any, limit: int = 40) -> str:
    """A value for an error message, cut short (a model may send a number of thousands of digits)."""
    try:
        text = json.dumps(value)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def box_text(box: dict[str, float]) -> str:
    """A box for text and summaries: [x0, y0, x1, y1] to three decimals."""
    return "[" + ", ".join(f"{box[k]:.3f}" for k in ("x0", "y0", "x1", "y1")) + "]"


def crop_box(image: Image.Image, box: dict[str, float]) -> Image.Image:
    """The pixels of a relative box (outward to whole pixels, at least one pixel each way)."""
    width, height = image.size
    left = min(width - 1, math.floor(box["x0"] * width))
    top = min(height - 1, math.floor(box["y0"] * height))
    right = max(left + 1, math.ceil(box["x1"] * width))
    bottom = max(top + 1, math.ceil(box["y1"] * height))
    return image.crop((left, top, right, bottom))


def fit_side(image: Image.Image, max_side: int | None) -> Image.Image:
    """Scaled so its longer side is the run's image size (up or down); None keeps it."""
    if not max_side or max(image.size) == max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.BOX)


def save_result_image(folder: Path, image: Image.Image, *identity: str) -> ImagePart:
    """A tool's image as a PNG in the run's tool folder, named by what made it (the same call, the same file)."""
    name = hashlib.sha1("|".join(identity).encode()).hexdigest()[:16]
    path = folder / f"{name}.png"
    folder.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        # Two questions about one image may make the same file at once: each writes its own, one wins.
        partial = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        image.save(partial, format="PNG")
        partial.replace(path)
    return ImagePart(path=str(path), role="tool")
