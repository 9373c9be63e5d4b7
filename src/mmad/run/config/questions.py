"""The [answers] and [selection] sections: how replies become letters, and which questions are asked."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from mmad.data.schema import Subtask
from mmad.run.config.base import Bool, Int, Section


class AnswerConfig(Section):
    """How replies become letters."""

    parser: Literal["mmad", "upstream", "upstream-first"] = Field(
        default="mmad",
        description="mmad (layered), upstream (the official regex: last letter) or upstream-first (LLaVA's)",
    )
    judge: str | None = Field(default=None, description="a model that maps unparsed replies to a letter")
    judge_base_url: str | None = Field(
        default=None,
        description="the judge's server's /v1 URL, comma-separated for several (default: its provider's)",
    )
    solver: str | None = Field(
        default=None,
        description="what answers each prompt: plain, cot, or a solver registered with "
        "mmad.solvers.register_solver (default: cot with the cot strategy, else plain)",
    )
    likelihood: Bool = Field(default=False, description="also ask for letter log-probabilities")
    answer_from: Literal["text", "likelihood"] = Field(
        default="text", description="text (parse the reply) or likelihood (the most likely letter)"
    )

    @field_validator("judge", "solver")
    @classmethod
    def _named_or_left_out(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A blank name (--judge "$UNSET") ran without a judge or with the default solver, silently, and a
        # blank judge still changed the protocol card, so the run was not ranked with the same run without it.
        if value is not None and (not value.strip() or value != value.strip()):
            what = (
                "a provider:model such as openai:gpt-4o-mini"
                if info.field_name == "judge"
                else "plain, cot or a registered solver"
            )
            msg = f"must name {what} (no blank, no spaces around it), or be left out"
            raise ValueError(msg)
        if value is not None:
            from mmad.run.secrets import redact

            if redact(value) != value:  # a key pasted as the name would reach run.json, the card and the report
                msg = "holds an API key, not a name: give the key in its environment variable, never in a setting"
                raise ValueError(msg)
        return value

    @field_validator("judge_base_url")
    @classmethod
    def _judge_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not all(one.strip().startswith(("http://", "https://")) for one in value.split(",")):
            msg = "must start with http:// or https://, e.g. http://127.0.0.1:8001/v1 (comma-separated for several)"
            raise ValueError(msg)
        from mmad.run.secrets import redact

        if redact(value) != value:  # run.json, the judge's description and the cache key would keep it
            msg = "holds an API key: give the key in the judge provider's environment variable, never in the URL"
            raise ValueError(msg)
        return value

    @property
    def wants_logprobs(self) -> bool:
        """Whether requests ask for letter log-probabilities."""
        return self.likelihood or self.answer_from == "likelihood"


class SelectionConfig(Section):
    """Which questions are asked (and scored)."""

    limit: Int | None = Field(default=None, ge=1, description="a seeded random sample of this many questions")
    subset: Literal["official-debug"] | None = Field(
        default=None, description="official-debug: the official scripts' --debug images (random.seed(1), 1,600)"
    )
    datasets: list[str] = Field(default_factory=list, description="only these source datasets (default: all)")
    categories: list[str] = Field(default_factory=list, description="only these categories (default: all)")
    subtasks: list[str] = Field(default_factory=list, description="only these subtasks (default: all)")
    seed: Int = Field(default=0, ge=0, description="the seed of limit's sample")
    errata: Literal["keep", "drop"] = Field(
        default="keep",
        description="keep: ask and score every question, as published; drop: leave out what the shipped errata name",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="leave out a dataset, a category or listed images (dataset:NAME, category:NAME, images:FILE)",
    )

    @field_validator("subtasks")
    @classmethod
    def _known_subtasks(cls, value: list[str]) -> list[str]:
        return [Subtask.parse(s).value for s in value]

    @field_validator("exclude", mode="before")
    @classmethod
    def _one_exclusion_or_more(cls, value: Any) -> Any:
        # exclude = "VisA" in a run file or mmad.evaluate(exclude="VisA"): one rule
        return [value] if isinstance(value, str) else value
