"""Everything that defines a run: one nested, validated config (recorded in run.json; never a secret).

The command line, the Python API and a run file give the same config, through the same checks:
`RunConfig.from_flat` takes flat settings (``shots=1``, ``concurrency=32``: the CLI flags and
`mmad.evaluate`'s keyword arguments) and `RunConfig.from_file` a TOML or JSON file with the nested
sections. A bad value becomes one ConfigError that names the setting, its flag and what is allowed.

Each setting has one name, its field's: the run file's key, `mmad.evaluate`'s keyword, a sweep's key,
the card's; its flag is the kebab of it, made with its help and default from the field
(`mmad.cli.setting_flags`). A new setting is a field with a description here and a keyword of
`mmad.evaluate` (tests/run/test_settings.py says which is missing); docs/settings.md's table is
regenerated from the schema. Names from before (``similar``, ``timeout``) are read with a FutureWarning.
"""

from __future__ import annotations

import difflib
import json
import numbers
import re
import tomllib
import warnings
from collections.abc import Collection
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from mmad.data.clean import exclude_paths_from
from mmad.data.schema import Subtask
from mmad.errors import ConfigError, RunError
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.prompts import PromptSettings, Variant
from mmad.protocol.strategies import parse_strategies
from mmad.tools.toolbox import parse_tool_names


class _NotGiven(Enum):
    NOT_GIVEN = "not given"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = _NotGiven.NOT_GIVEN
"""A keyword of `mmad.evaluate` left out: the recipe's value or the default (None is a setting's own value)."""
NotGiven = Literal[_NotGiven.NOT_GIVEN]
ProtocolName = Literal["per-question", "cumulative", "gemini", "per-image", "api-per-question", "system-cumulative"]
"""`Variant`'s values, for a type checker and an IDE (a test keeps them the same)."""


def _plain_number(kind: type[int] | type[float]) -> BeforeValidator:
    # numpy's and other numeric types (np.int64 from an array in the Python API) are numbers, not mistakes;
    # a bool is an int to Python but a mistake here.
    def convert(value: Any) -> Any:
        if isinstance(value, bool | kind):
            return value
        if kind is int and isinstance(value, numbers.Integral):
            return int(value)
        if kind is float and isinstance(value, numbers.Real):
            return float(value)
        return value

    return BeforeValidator(convert)


# Strict scalars: in a run file ``shots = true`` or ``limit = "10"`` is a mistake to name, not 1 or 10.
Int = Annotated[int, Strict(), _plain_number(int)]
Float = Annotated[float, Strict(), _plain_number(float)]  # still takes a whole number: timeout_s = 30
Bool = Annotated[bool, Strict()]


def _admits_none(info: FieldInfo) -> bool:
    return info.annotation is None or type(None) in get_args(info.annotation)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _none_spelt_out(cls, values: Any) -> Any:
        # TOML has no null: a run file, a sweep and `mmad.evaluate` say "none", as the flags do, for a
        # setting's None (leave the field out, keep the size, no detail).
        if not isinstance(values, dict):
            return values
        return {
            name: None
            if isinstance(value, str)
            and value.strip().lower() == "none"
            and name in cls.model_fields
            and _admits_none(cls.model_fields[name])
            else value
            for name, value in values.items()
        }


class PromptConfig(_Section):
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


class DecodingConfig(_Section):
    """Generation settings; None leaves the field out of the request, as some official scripts do."""

    max_tokens: Int | None = Field(
        default=128, ge=1, le=65536, description="the reply's token limit; none leaves it out of the request"
    )
    temperature: Float | None = Field(
        default=0.0, ge=0.0, le=2.0, description="sampling temperature; none leaves it out of the request"
    )


_OLD_IMAGE_KEYS = {"size": "image_size", "format": "image_format", "original": "original_images"}


class ImageConfig(_Section):
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


class AnswerConfig(_Section):
    """How replies become letters."""

    parser: Literal["mmad", "upstream", "upstream-first"] = Field(
        default="mmad",
        description="mmad (layered), upstream (the official regex: last letter) or upstream-first (LLaVA's)",
    )
    judge: str | None = Field(default=None, description="a model that maps unparsed replies to a letter")
    solver: str | None = Field(
        default=None,
        description="what answers each prompt: plain, cot, or a solver registered with "
        "mmad.solvers.register_solver (default: cot with the cot strategy, else plain)",
    )
    likelihood: Bool = Field(default=False, description="also ask for letter log-probabilities")
    answer_from: Literal["text", "likelihood"] = Field(
        default="text", description="text (parse the reply) or likelihood (the most likely letter)"
    )

    @property
    def wants_logprobs(self) -> bool:
        """Whether requests ask for letter log-probabilities."""
        return self.likelihood or self.answer_from == "likelihood"


class SelectionConfig(_Section):
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


class ExecutionConfig(_Section):
    """How requests are sent."""

    concurrency: Int = Field(default=16, ge=1, le=4096, description="requests in flight at most")
    max_retries: Int = Field(default=5, ge=0, le=100, description="retries per request")
    timeout_s: Float = Field(default=120.0, gt=0, le=86400, description="seconds per request")
    retry_base_s: Float = Field(default=1.0, ge=0, le=3600, description="seconds before the first retry (doubling)")
    retry_max_s: Float = Field(default=60.0, ge=0, le=3600, description="seconds between retries at most")
    max_cost: Float | None = Field(default=None, gt=0, description="stop cleanly once this many dollars are spent")
    max_errors: Int = Field(default=20, ge=0, description="stop after this many failed requests in a row (0: never)")
    prices: str | None = Field(
        default=None, description='a JSON file of {"model": [input $/M, output $/M]} (a path, not inline JSON)'
    )
    cache: Bool = Field(default=True, description="reuse and store responses (no-cache: neither)")
    cache_dir: str | None = Field(default=None, description="the response cache's folder (default: $MMAD_CACHE_DIR)")
    engine: Literal["local", "ray"] = Field(
        default="local", description="local: this process asks; ray: a pool of Ray actors (or Ray Data LLM) asks"
    )
    ray_address: str | None = Field(
        default=None, description="the Ray cluster to join (default $RAY_ADDRESS, else a local Ray for this run)"
    )
    ray_actors: Int = Field(default=2, ge=1, le=4096, description="Ray engine: actors holding the model (replicas)")
    ray_gpus: Float = Field(default=0.0, ge=0, le=64, description="Ray engine: GPUs per actor (in-process models)")

    @field_validator("ray_address")
    @classmethod
    def _address_given(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            msg = "must name a Ray cluster (auto, HOST:6379 or ray://HOST:10001), or be left out"
            raise ValueError(msg)
        return value

    @field_validator("prices")
    @classmethod
    def _prices_file(cls, value: str | None) -> str | None:
        # Inline JSON would be taken for a file name and fail as "No such file", far from the cause.
        if value is not None and value.lstrip().startswith(("{", "[")):
            msg = (
                'takes the path of a JSON file, not inline JSON: write {"model": [input $/M, output $/M]} '
                "to a file (prices.json) and give --prices prices.json"
            )
            raise ValueError(msg)
        return value


class ConnectionConfig(_Section):
    """Where the model is and how it runs (keys are read from key_env at call time, never stored)."""

    base_url: str | None = Field(default=None, description="the server's /v1 URL (overrides the preset's)")
    key_env: str | None = Field(default=None, description="NAME of the environment variable holding the API key")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="json merged into each request body")
    text_only: Bool = Field(default=False, description="the server rejects image parts")
    device: str | None = Field(default=None, description="in-process models: cuda, cuda:1 or cpu")
    dtype: str | None = Field(default=None, description="in-process models: bfloat16, float16 or float32")
    batch_size: Int | None = Field(
        default=None, ge=1, le=65536, description="in-process models: requests generated together"
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description='in-process models: json, e.g. {"tensor_parallel_size": 2} for vllm-local',
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            msg = "must start with http:// or https://, e.g. http://127.0.0.1:8000/v1"
            raise ValueError(msg)
        return value

    @field_validator("key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.replace("_", "a").isalnum()):
            msg = "must be the NAME of an environment variable (letters, digits, _), not a key"
            raise ValueError(msg)
        if value is not None:
            from mmad.run.secrets import key_variable

            key_variable(value)  # a server may echo the key in an error: records and logs must not keep it
        return value


SECTIONS: dict[str, type[_Section]] = {
    "prompt": PromptConfig,
    "decoding": DecodingConfig,
    "images": ImageConfig,
    "answers": AnswerConfig,
    "selection": SelectionConfig,
    "execution": ExecutionConfig,
    "connection": ConnectionConfig,
}

# One name per setting: a field's name is its run-file key (at the top level or in its section), its
# keyword of mmad.evaluate, its key in a sweep's settings and on the protocol card; its flag is the kebab
# of it. Field names are unique across the sections, so a flat name says which section it is in.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    name: (section, name) for section, cls in SECTIONS.items() for name in cls.model_fields
}
# Names a setting had before it had one name: still read, with a warning (users' files and scripts say them).
OLD_NAMES: dict[str, str] = {
    "similar": "similar_templates",
    "strategy": "strategies",
    "size": "image_size",
    "format": "image_format",
    "original": "original_images",
    "dataset": "datasets",
    "category": "categories",
    "subtask": "subtasks",
    "timeout": "timeout_s",
    "text_only_server": "text_only",
}
# Flags users' scripts use that are not the kebab of the name: still taken, without a warning.
OLD_FLAGS: dict[str, tuple[str, ...]] = {
    "similar_templates": ("--similar",),
    "strategies": ("--strategy",),
    "datasets": ("--dataset",),
    "categories": ("--category",),
    "subtasks": ("--subtask",),
    "timeout_s": ("--timeout",),
    "text_only": ("--text-only-server",),
}
IMAGE_FIELDS = tuple(ImageConfig.model_fields)
"""The image settings: a backend that reads the files itself (hf:, vllm-local:) reads none of them."""
# Settings a resumed run may change: how it is sent, not what is asked.
RESUMABLE_SECTIONS = frozenset({"execution", "connection"})


def flag_of(section: str, name: str) -> str:
    """The command-line flag that sets a field: the kebab of its name."""
    return "--" + name.replace("_", "-")


def setting_default(name: str) -> Any:
    """A flat setting's default, as a run file writes it (None for none)."""
    section, field = FLAT_NAMES[name]
    return SECTIONS[section]().model_dump(mode="json")[field]


def setting_help(name: str) -> str:
    """A flat setting's help line: its description and its default, both read from the schema."""
    section, field = FLAT_NAMES[name]
    description = SECTIONS[section].model_fields[field].description or ""
    default = setting_default(name)
    if default in (None, [], {}) or (default is False and field != "cache"):
        return description
    if isinstance(default, bool):
        return f"{description} [default: {'yes' if default else 'no'}]"
    shown = f"{default:g}" if isinstance(default, float) else _shown(default)
    return f"{description} [default: {shown}]"


def canonical_name(name: str, *, source: str = "", warn: bool = True) -> str:
    """The one name of a flat setting given by an old one (with a FutureWarning), or the name itself."""
    new = OLD_NAMES.get(name)
    if new is None or name in FLAT_NAMES:
        return name
    if not warn:
        return new
    where = f"{source}: " if source else ""
    warnings.warn(
        f"{where}{name!r} is the old name of the setting {new!r}; write {new} (the old name will stop working)",
        FutureWarning,
        stacklevel=3,
    )
    return new


class RunConfig(BaseModel):
    """The settings of one evaluation run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(description="provider:model, e.g. openai:gpt-4o")
    data: str = Field(description="data root holding mmad.json, or the json")
    recipe: str | None = Field(default=None, description="an official script's settings (mmad models --recipes)")
    overridden: list[str] = Field(default_factory=list, description="settings given on top of the recipe")
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    answers: AnswerConfig = Field(default_factory=AnswerConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    connection: ConnectionConfig = Field(default_factory=ConnectionConfig)

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not value.strip() or value != value.strip():
            msg = "must be a provider:model name such as openai:gpt-4o, vllm:NAME or random"
            raise ValueError(msg)
        from mmad.run.secrets import redact

        if redact(value) != value:
            # A key pasted as the model's name would be written to run.json, the progress line and the report.
            msg = (
                "holds an API key, not a model name: give the model's name here (openai:gpt-4o) "
                "and the key in its environment variable (OPENAI_API_KEY, or --key-env NAME)"
            )
            raise ValueError(msg)
        return value

    @field_validator("data")
    @classmethod
    def _data_given(cls, value: str) -> str:
        if not value.strip():
            msg = "must name a data root holding mmad.json, or the json"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        from mmad.protocol.prompts import check_settings

        try:
            check_settings(self.prompt_settings(), chain_of_thought="cot" in self.prompt.strategies)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.answers.answer_from == "likelihood" and self.prompt.protocol is not Variant.PER_QUESTION:
            msg = "answer_from likelihood (--answer-from likelihood) needs the per-question protocol"
            raise ValueError(msg)
        return self

    # Views used by the runner
    def prompt_settings(self) -> PromptSettings:
        """The prompt-building part of the config."""
        return self.prompt.settings(self.decoding)

    def image_settings(self) -> ImageSettings:
        """How images are prepared for this run's backend: the config's settings, or, for a backend that
        reads the image files itself (hf:, vllm-local:), the files' own bytes, which is what it gets; so
        settings it does not read change neither the response cache's key nor the images' digests.
        A perturbation it honours (the expert's) stays: it changes the pixels it scores, so the key."""
        if self.unhonoured(IMAGE_FIELDS):
            perturb = self.images.perturb if not self.unhonoured(["perturb"]) else None
            return ImageSettings(max_side=None, detail=None, original=True, perturb=perturb)
        return self.images.settings()

    def unhonoured(self, names: Collection[str]) -> list[str]:
        """Which of these settings (flat names) this run's backend does not read, per its provider's
        description (`mmad.models.providers`). A baseline (random, fixed) answers without looking: it
        stands in for any model, so it is taken to read them all; so is a provider mmad does not know."""
        from mmad.errors import UnknownModelError
        from mmad.models.providers import provider_info

        try:
            info = provider_info(self.model)
        except UnknownModelError:
            return []
        if info.transport == "none":
            return []
        return [name for name in names if not info.honours(name)]

    def recipe_notes(self) -> list[str]:
        """One line per setting the recipe gives that this run's backend does not read (announced, not
        refused: the recipe, not the user, chose it)."""
        if not self.recipe:
            return []
        from mmad.run.recipes import recipe_settings

        given = recipe_settings(self.recipe)
        ignored = self.unhonoured([f for section, values in given.items() for f in values if f in FLAT_NAMES])
        effective = self.image_settings()
        view: dict[str, Any] = {"image_size": effective.max_side, "image_format": effective.format}
        view["detail"] = effective.detail
        view |= {"original_images": effective.original, "resize": effective.resize, "mime": effective.mime}
        images: list[str] = []
        others: list[str] = []
        for name in ignored:
            value = given[FLAT_NAMES[name][0]][name]
            if name not in view or view[name] != value:  # else the backend does as the recipe asks anyway
                (images if name in IMAGE_FIELDS else others).append(f"{name} = {_as_toml(value)}")
        notes = []
        if images:
            notes.append(
                f"the {self.recipe} recipe's {', '.join(images)} {'is' if len(images) == 1 else 'are'} not used: "
                f"{self.model} reads the image files itself (its own processor prepares them), so they are left "
                "out of the protocol card"
            )
        if others:  # the expert's decoding settings: it writes no text (mmad models says what each provider reads)
            notes.append(
                f"the {self.recipe} recipe's {', '.join(others)} {'is' if len(others) == 1 else 'are'} not used: "
                f"{self.model} does not read {'it' if len(others) == 1 else 'them'} (mmad models says what it reads)"
            )
        return notes

    # Construction
    @classmethod
    def from_flat(
        cls,
        model: str,
        data: str,
        *,
        recipe: str | None = None,
        check_unused: Collection[str] | None = None,
        by_name: bool = False,
        **settings: Any,
    ) -> RunConfig:
        """A config from flat names (``shots=0``, ``concurrency=32``, ``image_size=None``), over a recipe.

        A bad value, or a given setting this run would ignore (``ray_actors`` on the local engine,
        ``device`` for an API model), is a ConfigError naming its flag, or with ``by_name`` its name
        (`mmad.evaluate`'s keyword, a sweep's key); ``check_unused`` narrows that check to these flat
        names (a sweep checks its grid-wide settings against the whole grid instead of each cell).
        """
        settings = _canonical(settings)
        nested = _nest(settings)
        names = settings if check_unused is None else [canonical_name(n, warn=False) for n in check_unused]
        explicit = {".".join(FLAT_NAMES[n]) for n in names if n in FLAT_NAMES}
        named = {".".join(FLAT_NAMES[n]) for n in settings if n in FLAT_NAMES} if by_name else set()
        raw = {"model": model, "data": data, "recipe": recipe, **nested}
        return cls.from_nested(raw, explicit=explicit, file_keys=named)

    @classmethod
    def from_nested(
        cls,
        raw: dict[str, Any],
        *,
        source: str = "",
        explicit: Collection[str] | None = None,
        file_keys: Collection[str] = (),
    ) -> RunConfig:
        """A config from nested sections; a recipe's settings sit under what is given explicitly.

        ``explicit`` are the dotted settings the user gave (default: every one in ``raw``'s sections);
        any of them that this run would ignore is refused (`mmad.run.unused`), by its key where it is
        one of ``file_keys`` (given by its name, in a run file or to `mmad.evaluate`, not by a flag).
        """
        raw = dict(raw)
        recipe_name = raw.get("recipe")
        given = {s: raw.pop(s) or {} for s in SECTIONS if s in raw}
        for section, values in given.items():
            if not isinstance(values, dict):
                msg = f"{source or 'config'}: [{section}] must be a table of settings"
                raise ConfigError(msg)
        merged: dict[str, dict[str, Any]] = {}
        overridden: list[str] = []
        if recipe_name:
            from mmad.run.recipes import recipe_settings

            for section, values in recipe_settings(recipe_name).items():
                merged.setdefault(section, {}).update(values)
        for section, values in given.items():
            for field, value in values.items():
                if section in merged and field in merged[section] and merged[section][field] != value:
                    overridden.append(f"{section}.{field}")
                merged.setdefault(section, {})[field] = value
        raw.setdefault("overridden", sorted(set(overridden) | set(raw.get("overridden") or [])))
        try:
            config = cls.model_validate({**raw, **merged})
        except ValidationError as exc:
            raise config_error(exc, source, keys=file_keys) from None
        from mmad.run.unused import refuse_unused

        if explicit is None:
            explicit = {f"{section}.{field}" for section, values in given.items() for field in values}
        refuse_unused(config, explicit, source=source, file_keys=file_keys)
        return config

    @classmethod
    def from_file(cls, path: str | Path, **flat: Any) -> RunConfig:
        """A config from a TOML file, a JSON config or a run folder's run.json; flat settings on top.

        A config file may give any setting at the top level by its flat name (``limit = 10``, as
        ``mmad sweep``'s ``[settings]``) or in its section (``[selection] limit = 10``). Relative
        paths in a config file (data, knowledge, prices, cache_dir) are relative to the file's
        folder; a run.json's config runs again as recorded, and flat settings are checked as flags.
        """
        source = Path(path)
        if source.suffix.lower() not in {".toml", ".json"}:
            kind = source.suffix or "a file without a suffix"
            msg = f"{source}: a run file is TOML (.toml) or JSON (.json, or a run folder's run.json), not {kind}"
            raise ConfigError(msg)
        try:
            text = source.read_text(encoding="utf-8")
            raw = tomllib.loads(text) if source.suffix.lower() == ".toml" else json.loads(text)
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read the config file {source}: {exc}"
            raise ConfigError(msg) from exc
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            msg = f"{source} is not valid {'TOML' if source.suffix.lower() == '.toml' else 'JSON'}: {exc}"
            raise ConfigError(msg) from exc
        if isinstance(raw, dict) and isinstance(raw.get("config"), dict) and "mmad_version" in raw:
            # a run folder's run.json: run the same config again (it was checked when it was made), read as
            # its manifest so that an older run.json is upgraded and a newer one refused
            from mmad.run.manifest import recorded_config

            try:
                recorded = recorded_config(raw, source)
            except RunError as exc:
                raise ConfigError(str(exc)) from None
            return cls.from_nested_with_flat(recorded.model_dump(mode="json"), flat, source=str(source))
        if not isinstance(raw, dict):
            msg = f"{source}: a config file is a table of settings (model, data, [prompt], [execution], ...)"
            raise ConfigError(msg)
        flat = _canonical(flat)
        raw = _resolve_paths(_lift_flat(_renamed_in_sections(raw, str(source)), str(source)), source.parent)
        in_file = {f"{s}.{f}" for s in SECTIONS if isinstance(raw.get(s), dict) for f in raw[s]}
        flags = {".".join(FLAT_NAMES[n]) for n in flat if n in FLAT_NAMES}
        return cls.from_nested_with_flat(
            raw, flat, source=str(source), explicit=in_file | flags, file_keys=in_file - flags
        )

    @classmethod
    def from_nested_with_flat(
        cls,
        raw: dict[str, Any],
        flat: dict[str, Any],
        *,
        source: str,
        explicit: Collection[str] | None = None,
        file_keys: Collection[str] = (),
    ) -> RunConfig:
        """Nested settings (a file's, a recorded run's) with flat settings on top.

        Only ``explicit`` (default: the flat settings) are checked for settings the run would ignore.
        With ``explicit=()`` (a recorded run's settings, not the user's) an old name is read without a warning.
        """
        flat = _canonical(flat, warn=explicit != ())
        raw = _apply_flat(raw, flat)
        missing = [k for k in ("model", "data") if not raw.get(k)]
        if missing:
            msg = f"{source} does not say {' or '.join(missing)}; add it to the file or give --{missing[0]}"
            raise ConfigError(msg)
        if explicit is None:
            explicit = {".".join(FLAT_NAMES[n]) for n in flat if n in FLAT_NAMES}
        return cls.from_nested(raw, source=str(source), explicit=explicit, file_keys=file_keys)

    def override_notes(self, *, file: str | None = None, flags: Collection[str] = ()) -> list[str]:
        """One line per setting given on top of the recipe (its flag, its value, the recipe's), to be shown:
        a flag that quietly replaced part of an official script's settings would go unnoticed.

        With ``file`` (the run file the config came from), a setting not among ``flags`` (dotted names
        given on the command line) is named as that file's key: naming a flag the user never typed
        would send them looking for it in their command."""
        if not self.recipe or not self.overridden:
            return []
        from mmad.run.recipes import recipe_settings

        recipe = recipe_settings(self.recipe)
        mine = self.model_dump(mode="json")
        notes = []
        for dotted in self.overridden:
            section, _, field = dotted.partition(".")
            if section not in SECTIONS or field not in mine[section]:
                continue
            was = recipe.get(section, {}).get(field)
            value = mine[section][field]
            if file is not None and dotted not in flags:
                given = f"{field} = {_as_toml(value)} in {file}"
            else:
                flag = flag_of(section, field)
                if isinstance(value, bool):  # a yes/no flag takes no value: --cot-history, --no-cot-history
                    given = flag if value else "--no-" + flag.removeprefix("--")
                else:
                    given = f"{flag} {_shown(value)}"
            notes.append(f"{given} overrides the {self.recipe} recipe's {field} = {_shown(was)}")
        return notes

    def changed_settings(self, other: RunConfig) -> list[str]:
        """The dotted settings that differ between two configs (for --resume and compare)."""
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        changed = [k for k in ("model", "data", "recipe") if mine[k] != theirs[k]]
        for section in SECTIONS:
            for field, value in mine[section].items():
                if theirs[section].get(field) != value:
                    changed.append(f"{section}.{field}")
        return changed


def _shown(value: Any) -> str:
    """A setting's value as a flag takes it (none for None)."""
    value = getattr(value, "value", value)  # an enum
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _as_toml(value: Any) -> str:
    """A setting's value as a run file writes it (a quoted string; "none" for None, as the file says it)."""
    value = getattr(value, "value", value)
    return '"none"' if value is None else json.dumps(value, default=str)


def did_you_mean(name: str, known: Collection[str]) -> str:
    """'did you mean X? ' for the closest known name, or nothing (a message's opening words)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"unknown setting {name!r}; {did_you_mean(name, FLAT_NAMES)}known settings: {', '.join(sorted(FLAT_NAMES))}"
    )


def _canonical(flat: dict[str, Any], *, source: str = "", warn: bool = True) -> dict[str, Any]:
    """Flat settings by their one names (an old name warned about); a setting given by both names is an error."""
    out: dict[str, Any] = {}
    said: dict[str, str] = {}  # the name each setting was given by
    for name, value in flat.items():
        new = canonical_name(name, source=source, warn=warn)
        if new in out:
            where = f"{source}: " if source else ""
            old = name if name != new else said[new]
            msg = f"{where}{new} is given twice, as {new} and by its old name {old}; keep {new}"
            raise ConfigError(msg)
        out[new], said[new] = value, name
    return out


def _renamed_in_sections(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """A run file's sections with their old keys ([images] size) renamed, each with a FutureWarning."""
    out = dict(raw)
    for section in SECTIONS:
        table = raw.get(section)
        if isinstance(table, dict) and any(k in OLD_NAMES and k not in FLAT_NAMES for k in table):
            out[section] = _canonical(table, source=f"{source} [{section}]")
    return out


def _nest(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name not in FLAT_NAMES:
            raise _unknown(name)
        section, field = FLAT_NAMES[name]
        nested.setdefault(section, {})[field] = value
    return nested


def _apply_flat(raw: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, value in flat.items():
        if name in IDENTITY:
            out[name] = value
            continue
        if name not in FLAT_NAMES:
            raise _unknown(name)
        section, field = FLAT_NAMES[name]
        out.setdefault(section, {})[field] = value
    return out


IDENTITY = ("model", "data", "recipe")
# Keys of a config file's top level besides the sections and the flat names.
_TOP_LEVEL = frozenset({*IDENTITY, "overridden"})
# Settings that name files: relative ones in a config file are relative to the file's folder.
PATH_SETTINGS = (("prompt", "knowledge"), ("execution", "prices"), ("execution", "cache_dir"))


def _lift_flat(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """A config file's top-level flat settings (``limit = 10``) moved into their sections."""
    out = {k: v for k, v in raw.items() if k in _TOP_LEVEL or k in SECTIONS}
    lifted: dict[str, str] = {}  # field -> the top-level key that gave it
    for old, value in raw.items():
        if old in out:
            continue
        name = canonical_name(old, source=source)
        if name not in FLAT_NAMES:
            positive = name.removeprefix("no_").removeprefix("no-")
            if name != positive and positive in FLAT_NAMES:  # the --no-cache style of a flag
                msg = (
                    f"{source}: {name!r} is the flag --{name.replace('_', '-')}; in a run file write {positive} = false"
                )
            elif name == "out":
                msg = f"{source}: out is not a setting of a run file (one file can make many runs); give --out DIR"
            else:
                msg = (
                    f"{source}: {name!r} is not a setting; {did_you_mean(name, [*FLAT_NAMES, *_TOP_LEVEL])}"
                    "the top level holds model, data, recipe, the sections "
                    f"[{'], ['.join(SECTIONS)}] and flat settings by their names "
                    f"({', '.join(sorted(FLAT_NAMES))})"
                )
            raise ConfigError(msg)
        section, field = FLAT_NAMES[name]
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            continue  # reported by from_nested: [section] must be a table
        if field in lifted:
            names = " and ".join(sorted({lifted[field], old}, key=lambda n: n != field))
            msg = f"{source}: {field} is given twice at the top level, as {names}; keep {field}"
            raise ConfigError(msg)
        if field in table:
            msg = f"{source}: {field} is given twice, as {old} at the top level and in [{section}]; keep one"
            raise ConfigError(msg)
        table[field] = value
        lifted[field] = old
    return out


def _resolve_paths(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative file settings of a config file, made relative to its folder (as most tools read them)."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not Path(value).expanduser().is_absolute():
            return str(folder / value)
        return value

    out = dict(raw)
    out["data"] = resolve(out.get("data"))
    selection = out.get("selection")
    if isinstance(selection, dict) and isinstance(selection.get("exclude"), str | list):
        rules = selection["exclude"]
        out["selection"] = {
            **selection,
            "exclude": exclude_paths_from([rules] if isinstance(rules, str) else rules, folder),
        }
    for section, field in PATH_SETTINGS:
        table = out.get(section)
        if isinstance(table, dict) and field in table:
            out[section] = {**table, field: resolve(table[field])}
    return out


_PHRASES = (
    ("Value error, ", ""),
    ("Input should be greater than or equal to ", "must be at least "),
    ("Input should be less than or equal to ", "must be at most "),
    ("Input should be greater than ", "must be more than "),
    ("Input should be less than ", "must be less than "),
    ("Input should be ", "must be "),
)


def _plain(message: str) -> str:
    for old, new in _PHRASES:
        if message.startswith(old):
            return new + message[len(old) :]
    return message


def plain_reason(message: str) -> str:
    """A pydantic message in the words of mmad's errors ("must be at least 1")."""
    return _plain(message)


def _by_names(reason: str, keys: Collection[str]) -> str:
    """A check's reason with the flags of settings given by name (``keys``, dotted) said as those names:
    "(--answer-from likelihood)" restating the setting goes, "--perturb" is "perturb"."""
    named = {flag_of(*FLAT_NAMES[n]): n for n in FLAT_NAMES if ".".join(FLAT_NAMES[n]) in keys}
    if not named:
        return reason
    flags = "|".join(re.escape(f) for f in sorted(named, key=len, reverse=True))
    reason = re.sub(rf" \((?:{flags})(?: [^()]*)?\)", "", reason)
    return re.sub(rf"(?<![\w-])({flags})(?![\w-])", lambda m: named[m.group(1)], reason)


def config_error(exc: ValidationError, source: str = "", *, keys: Collection[str] = ()) -> ConfigError:
    """One readable ConfigError from pydantic's errors: setting, flag, value, what is allowed.

    A setting among ``keys`` (dotted) was given by its name (a `mmad.evaluate` keyword, a run file's key),
    not by a flag: it is named alone, as the caller wrote it; a flag there would send them looking for it.
    """
    lines = []
    for error in exc.errors():
        location = [str(p) for p in error["loc"]]
        if len(location) >= 2 and location[0] in SECTIONS:
            section, field = location[0], location[1]
            by_name = f"{section}.{field}" in keys
            name = field if by_name else f"{field} ({flag_of(section, field)})"
        elif location and location[0] in SECTIONS:  # a check across a section's settings: it has no flag
            name = f"[{location[0]}]"
        elif location:
            name = f"{location[0]} (--{location[0]})"
        else:
            name = "the config"
        reason = _by_names(_plain(str(error["msg"])), keys)
        if location[-1:] == ["detail"] and error["type"] == "literal_error":  # None is spelt "none" in flags
            reason = "must be 'low', 'high', 'auto' or 'none' (none leaves the field out of the request)"
        if error["type"] == "extra_forbidden":
            fields = list(SECTIONS[location[0]].model_fields) if location and location[0] in SECTIONS else []
            known = did_you_mean(location[-1], fields) + "known " + ", ".join(fields) if fields else ""
            reason = f"is not a setting{' of [' + location[0] + ']: ' + known if known else ''}"
            if len(location) == 2 and location[1] in FLAT_NAMES:
                home, field = FLAT_NAMES[location[1]]
                named = "" if field == location[1] else f" (as {field})"
                reason = f"belongs in [{home}]{named}; or write it at the top level as {location[1]} = ..."
            name = ".".join(location)
        value = error.get("input")
        if isinstance(value, numbers.Number) and not isinstance(value, int | float) and hasattr(value, "item"):
            value = value.item()  # numpy's np.int64(0) shown as the 0 it is
        shown = (
            "" if error["type"] in {"missing", "extra_forbidden"} or isinstance(value, dict) else f" (got {value!r})"
        )
        lines.append(f"{name}: {reason}{shown}")
    prefix = f"{source}: " if source else ""
    return ConfigError(prefix + "; ".join(lines))
