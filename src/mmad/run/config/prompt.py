"""The [prompt] and [decoding] sections: how questions become requests, and the generation settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from mmad.errors import ConfigError
from mmad.protocol.prompts import PromptSettings, Variant
from mmad.protocol.strategies import parse_strategies
from mmad.run.config.base import Bool, Float, Int, Section
from mmad.tools.toolbox import parse_tool_names


class PromptConfig(Section):
    """How questions become requests."""

    protocol: Variant = Field(
        default=Variant.PER_QUESTION,
        description="how questions become requests: " + ", ".join(v.value for v in Variant),
    )
    shots: Int = Field(default=1, ge=0, le=64, description="template images shown before the query")
    similar_templates: Bool = Field(
        default=False, description="show the similar_templates instead of the random_templates"
    )
    blind: Bool = Field(default=False, description="text-only baseline: no images")
    circular: Bool = Field(default=False, description="ask every rotation of the options")
    strategies: list[str] = Field(
        default_factory=list, description="rag, cot, agent:expert:bbox, tools, ...; rag+cot combines; none: no strategy"
    )
    knowledge: str | None = Field(
        default=None, description="the rag strategy's domain-knowledge json (default: in the data root)"
    )
    cot_history: Bool = Field(
        default=False,
        description="with cot: each question also carries its image's earlier questions and replies, as "
        "InternVL's chat() keeps them (set by the internvl recipe)",
    )
    tools: list[str] = Field(
        default_factory=list,
        description="the tools strategy's tools, from zoom, reference, compare, expert, knowledge "
        "(default: every one that can work here)",
    )
    max_turns: Int = Field(
        default=4, ge=1, le=32, description="the tools strategy: model turns per question, the last one answers"
    )
    tool_protocol: Literal["auto", "native", "text"] = Field(
        default="auto",
        description="the tools strategy: native (function calling), text (one JSON object per reply) or auto "
        "(text for a model in this process; for a server native, text once it refuses tools)",
    )
    blend: Float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="the tools strategy: the answer from blend x the tools branch's option scores + "
        "(1 - blend) x the direct branch's (0.5 averages); none answers from the tools branch",
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_list(cls, value: Any) -> Any:
        # tools = "zoom,expert" in a run file; --tools zoom,expert or one --tools per tool
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return value
        try:
            return list(parse_tool_names(values) or ())
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("strategies", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        # strategies = "rag+cot" in a run file; --strategies rag+cot or one --strategies per strategy; "none"
        # (a sweep's word for the plain cell) is no strategy, so a flag can clear a run file's or a recipe's
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return value
        parts = [part.strip() for v in values for part in v.replace(",", "+").split("+") if part.strip()]
        nothing = [part for part in parts if part.lower() in {"none", "plain"}]
        chosen = [part for part in parts if part.lower() not in {"none", "plain"}]
        if nothing and chosen:
            # One of them would be dropped silently; which the user meant is theirs to say.
            msg = (
                f"{nothing[0]} and {'+'.join(chosen)} contradict each other: {nothing[0]} is no strategy; "
                f"give {'+'.join(chosen)} alone, or {nothing[0]} alone for the plain prompt"
            )
            raise ValueError(msg)
        return chosen

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: list[str]) -> list[str]:
        try:
            return parse_strategies(value).names
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def settings(self, decoding: DecodingConfig) -> PromptSettings:
        """The protocol layer's view."""
        return PromptSettings(
            variant=self.protocol,
            shots=self.shots,
            similar_templates=self.similar_templates,
            blind=self.blind,
            circular=self.circular,
            max_tokens=decoding.max_tokens,
            cot_history=self.cot_history,
        )


class DecodingConfig(Section):
    """Generation settings; None leaves the field out of the request, as some official scripts do."""

    max_tokens: Int | None = Field(
        default=128, ge=1, le=65536, description="the reply's token limit; none leaves it out of the request"
    )
    temperature: Float | None = Field(
        default=0.0, ge=0.0, le=2.0, description="sampling temperature; none leaves it out of the request"
    )
