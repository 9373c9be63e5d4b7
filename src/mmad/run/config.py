"""Everything that defines a run; recorded in run.json (never a secret: keys stay in the environment)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from mmad.protocol.images import ImageSettings
from mmad.protocol.prompts import PromptSettings, Variant


class RunConfig(BaseModel):
    """The settings of one evaluation run. Every CLI flag of `mmad eval` maps to a field here."""

    model: str = Field(description="provider:model, e.g. openai:gpt-4o")
    data: str = Field(description="data root holding mmad.json, or the json")
    # Protocol
    protocol: Variant = Variant.PER_QUESTION
    shots: int = Field(default=1, ge=0)
    similar_templates: bool = False
    blind: bool = False
    circular: bool = False
    max_tokens: int = 128
    temperature: float | None = 0.0
    strategies: list[str] = Field(default_factory=list)
    knowledge: str | None = Field(default=None, description="domain-knowledge json (default: found in the data root)")
    # Images
    image_size: int | None = 512
    image_format: Literal["jpeg", "png"] = "jpeg"
    detail: Literal["low", "high", "auto"] | None = "low"
    original_images: bool = False
    # Answers
    parser: Literal["mmad", "upstream"] = "mmad"
    judge: str | None = Field(default=None, description="a model that maps unparsed replies to a letter")
    likelihood: bool = Field(default=False, description="also ask for letter log-probabilities")
    answer_from: Literal["text", "likelihood"] = Field(
        default="text", description="likelihood: the option letter with the highest log-probability, no parsing"
    )
    # Selection
    limit: int | None = None
    datasets: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    subtasks: list[str] = Field(default_factory=list)
    seed: int = 0
    # Execution
    concurrency: int = Field(default=16, ge=1)
    max_retries: int = Field(default=5, ge=0)
    timeout_s: float = 120.0
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    max_cost: float | None = None
    prices: str | None = None
    cache: bool = True
    cache_dir: str | None = None
    # Model connection (keys are read from key_env at call time, never stored)
    base_url: str | None = None
    key_env: str | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    text_only: bool = False
    device: str | None = Field(default=None, description="in-process models: cuda, cuda:1, cpu (default: a GPU if any)")
    dtype: str | None = Field(default=None, description="in-process models: bfloat16, float16, float32 (default: auto)")
    batch_size: int | None = Field(default=None, ge=1, description="in-process models: requests generated together")
    model_args: dict[str, Any] = Field(default_factory=dict, description="in-process models: engine arguments")

    def prompt_settings(self) -> PromptSettings:
        """The prompt-building part of the config."""
        return PromptSettings(
            variant=self.protocol,
            shots=self.shots,
            similar_templates=self.similar_templates,
            blind=self.blind,
            circular=self.circular,
            max_tokens=self.max_tokens,
        )

    def image_settings(self) -> ImageSettings:
        """The image-preprocessing part of the config."""
        return ImageSettings(
            max_side=self.image_size,
            format=self.image_format,
            detail=self.detail,
            original=self.original_images,
        )
