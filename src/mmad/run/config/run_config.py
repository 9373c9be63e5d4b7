"""`RunConfig`: the settings of one run, its views for the runner, and the ways it is made."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmad.errors import ConfigError
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.prompts import PromptSettings, Variant
from mmad.run.config import build, notes, run_file
from mmad.run.config.execution import ConnectionConfig, ExecutionConfig
from mmad.run.config.images import ImageConfig
from mmad.run.config.names import IMAGE_FIELDS, SECTIONS
from mmad.run.config.prompt import DecodingConfig, PromptConfig
from mmad.run.config.questions import AnswerConfig, SelectionConfig


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
        return notes.recipe_notes(self)

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
        return build.from_flat(cls, model, data, recipe=recipe, check_unused=check_unused, by_name=by_name, **settings)

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
        return build.from_nested(cls, raw, source=source, explicit=explicit, file_keys=file_keys)

    @classmethod
    def from_file(cls, path: str | Path, **flat: Any) -> RunConfig:
        """A config from a TOML file, a JSON config or a run folder's run.json; flat settings on top.

        A config file may give any setting at the top level by its flat name (``limit = 10``, as
        ``mmad sweep``'s ``[settings]``) or in its section (``[selection] limit = 10``). Relative
        paths in a config file (data, knowledge, prices, cache_dir) are relative to the file's
        folder; a run.json's config runs again as recorded, and flat settings are checked as flags.
        """
        return run_file.from_file(cls, path, **flat)

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
        return build.from_nested_with_flat(cls, raw, flat, source=source, explicit=explicit, file_keys=file_keys)

    def override_notes(self, *, file: str | None = None, flags: Collection[str] = ()) -> list[str]:
        """One line per setting given on top of the recipe (its flag, its value, the recipe's), to be shown:
        a flag that quietly replaced part of an official script's settings would go unnoticed.

        With ``file`` (the run file the config came from), a setting not among ``flags`` (dotted names
        given on the command line) is named as that file's key: naming a flag the user never typed
        would send them looking for it in their command."""
        return notes.override_notes(self, file=file, flags=flags)

    def changed_settings(self, other: RunConfig) -> list[str]:
        """The dotted settings that differ between two configs (for --resume and compare)."""
        mine, theirs = self.model_dump(mode="json"), other.model_dump(mode="json")
        changed = [k for k in ("model", "data", "recipe") if mine[k] != theirs[k]]
        for section in SECTIONS:
            for field, value in mine[section].items():
                if theirs[section].get(field) != value:
                    changed.append(f"{section}.{field}")
        return changed
