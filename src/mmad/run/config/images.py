"""The [images] section: how images are prepared before they are sent."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mmad.errors import ConfigError
from mmad.protocol.encoding import ImageSettings
from mmad.run.config.base import Bool, Int, Section

_OLD_IMAGE_KEYS = {"size": "image_size", "format": "image_format", "original": "original_images"}


class ImageConfig(Section):
    """How images are prepared before they are sent."""

    image_size: Int | None = Field(
        default=512, ge=16, le=8192, description="longest side in px; 0 or none keeps the size"
    )
    image_format: Literal["jpeg", "png"] = Field(default="jpeg", description="jpeg or png: how images are encoded")
    detail: Literal["low", "high", "auto"] | None = Field(
        default="low", description="the image parts' detail: low, high, auto, or none to leave it out"
    )
    original_images: Bool = Field(default=False, description="send the files' own bytes (no resizing)")
    resize: Literal["mmad", "official"] = Field(
        default="mmad",
        description="mmad, or official (int() truncation of the scaled side, as the official scripts)",
    )
    mime: Literal["content", "extension"] = Field(
        default="content",
        description="content or extension (label data URLs by file extension, as the official API scripts)",
    )
    perturb: str | None = Field(
        default=None,
        description="perturb the query images (never templates), deterministic per image: any of "
        "blur=2,dark=0.5,jpeg=30,noise=0.03,rotate=5",
    )

    @field_validator("perturb", mode="before")
    @classmethod
    def _perturbations(cls, value: Any) -> Any:
        # perturb = {blur = 2} in a run file, or "blur=2,dark=0.5"; kept as the canonical text
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        if not isinstance(value, str) or value.strip().lower() in ("", "none"):
            return None if isinstance(value, str) else value
        from mmad.protocol.perturb import parse_perturb

        try:
            return parse_perturb(value).label
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _perturbed_pixels_are_encoded(self) -> ImageConfig:
        if self.perturb and self.original_images:
            msg = (
                "--perturb changes the query images' pixels, so their files' own bytes cannot be sent; "
                "leave --original-images out (or --perturb)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="before")
    @classmethod
    def _recorded_names(cls, values: Any) -> Any:
        # run.json of runs made before the one-name settings says size, format, original: read as recorded
        if not isinstance(values, dict):
            return values
        return {_OLD_IMAGE_KEYS.get(k, k) if _OLD_IMAGE_KEYS.get(k) not in values else k: v for k, v in values.items()}

    @field_validator("image_size", mode="before")
    @classmethod
    def _zero_keeps_the_size(cls, value: Any) -> Any:
        # --image-size 0 has always meant "keep the size"; a file, a sweep and evaluate() say it the same way
        return None if isinstance(value, int) and not isinstance(value, bool) and value == 0 else value

    def settings(self) -> ImageSettings:
        """The protocol layer's view."""
        return ImageSettings(
            max_side=self.image_size,
            format=self.image_format,
            detail=self.detail,
            original=self.original_images,
            resize=self.resize,
            mime=self.mime,
            perturb=self.perturb,
        )
