"""Settings a run would silently ignore: refused by name, so a flag never does nothing unnoticed.

Only what the user set explicitly is checked (a flag, a keyword of `mmad.evaluate`, a key of a
--config file), never a default or a recipe's value, and only where the value differs from the
default (setting the default changes nothing, so nothing is ignored). Plugin providers (the
``mmad.models`` entry points) may read any connection setting, so theirs are not checked.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmad.errors import ConfigError
from mmad.models.providers import API_SETTINGS, IN_PROCESS_SETTINGS, PROVIDERS

if TYPE_CHECKING:
    from mmad.run.config import RunConfig

RAY_SETTINGS = ("ray_address", "ray_actors", "ray_gpus")
_IN_PROCESS = "hf:, vllm-local:, expert"
TOOLS_SETTINGS = frozenset({"prompt.tools", "prompt.max_turns", "prompt.tool_protocol", "prompt.blend"})
"""The tools strategy's own settings: given without it, they change nothing."""


@dataclass(frozen=True)
class Unused:
    """One explicitly given setting that this run would not use."""

    setting: str
    """Dotted, e.g. ``execution.ray_actors``."""
    message: str


def _flag(setting: str) -> str:
    from mmad.run.config import flag_of

    section, _, field = setting.partition(".")
    return flag_of(section, field)


def _connection(config: RunConfig, field: str) -> str | None:
    """Why a connection setting does not apply to the model, or None when it does."""
    provider = config.model.partition(":")[0]
    info = PROVIDERS.get(provider)
    if info is None or info.honours(field):
        return None  # a plugin provider: it may read any option
    flag = _flag(f"connection.{field}")
    if field in API_SETTINGS:
        return (
            f"{flag} applies to models behind an HTTP API (openai:, vllm:, compat:, ...), but {config.model} runs in "
            f"this process, so it would be ignored; leave {flag} out, or serve the model and use e.g. "
            f"-m vllm:NAME --base-url URL"
        )
    reads = [s for s in IN_PROCESS_SETTINGS if info.honours(s)]
    if reads:
        why = f"{provider}: reads only {', '.join(_flag(f'connection.{s}') for s in reads)}"
        if provider == "vllm-local" and field == "device":
            why += (
                " (vLLM places the model itself: choose GPUs with CUDA_VISIBLE_DEVICES or "
                "--model-args '{\"tensor_parallel_size\": N}')"
            )
        return f"{flag} would be ignored: {why}; leave {flag} out"
    if info.transport == "http":
        where, hint = "is asked over HTTP", " (a served model's own settings are given where its server starts)"
    else:
        where, hint = "loads no weights", ""
    return (
        f"{flag} applies to in-process models ({_IN_PROCESS}), but {config.model} {where}, so it would be "
        f"ignored; leave {flag} out{hint}"
    )


def _judge_address(config: RunConfig, flag: str) -> str | None:
    """Why the judge's address would go unused: no judge, or one that is not asked over HTTP."""
    judge = config.answers.judge
    if judge is None:
        return (
            f"{flag} is the judge's address, but this run has no --judge, so it would be ignored; add --judge "
            f"provider:model (e.g. compat:NAME for the model served there), or leave {flag} out"
        )
    info = PROVIDERS.get(judge.partition(":")[0])
    if info is None or info.honours("base_url"):
        return None  # a plugin provider may read it
    return (
        f"{flag} would be ignored: the judge {judge} is not asked over HTTP; name a served judge "
        f"(e.g. compat:NAME), or leave {flag} out"
    )


def _why_unused(config: RunConfig, setting: str) -> str | None:
    section, _, field = setting.partition(".")
    flag = _flag(setting)
    if section == "execution" and field in RAY_SETTINGS and config.execution.engine != "ray":
        return (
            f"{flag} applies to the Ray engine only, but this run uses the local engine, so it would be ignored; "
            f"add --engine ray, or leave {flag} out"
        )
    if setting == "execution.ray_gpus" and config.execution.ray_gpus:
        info = PROVIDERS.get(config.model.partition(":")[0])
        if info is not None and not info.loads_weights:
            # Ray would hold the actors until GPUs appear: on a cluster without them, for ever.
            return (
                f"{flag} reserves GPUs for models loaded in each Ray actor (hf:, vllm-local:, expert), but "
                f"{config.model} loads no weights there, so the GPUs would sit idle; leave {flag} out"
            )
    if section == "connection" and (field in API_SETTINGS or field in IN_PROCESS_SETTINGS):
        return _connection(config, field)
    if (section == "decoding" or setting == "answers.likelihood") and config.unhonoured([field]):
        info = PROVIDERS[config.model.partition(":")[0]]  # unhonoured() is empty for providers it does not know
        reads = ", ".join(_flag(f"connection.{s}") for s in IN_PROCESS_SETTINGS if info.honours(s)) or "none"
        return f"{flag} would be ignored: {info.name}: reads only {reads} (it writes no text); leave {flag} out"
    if section == "images" and config.unhonoured([field]):
        return (
            f"{flag} would be ignored: {config.model} reads the image files itself (its own processor prepares "
            f"them); leave {flag} out"
        )
    if setting == "answers.judge_base_url":
        return _judge_address(config, flag)
    if setting == "selection.seed" and config.selection.limit is None:
        return (
            f"{flag} seeds the sample --limit draws, but this run has no --limit (it asks every selected question), "
            f"so it would be ignored; add --limit N, or leave {flag} out"
        )
    if setting == "prompt.knowledge" and not {"rag", "tools"} & set(config.prompt.strategies):
        return (
            f"{flag} is the domain-knowledge file of the rag strategy (and the tools strategy's knowledge tool), "
            f"but this run has neither, so it would be ignored; add --strategies rag, or leave {flag} out"
        )
    if setting in TOOLS_SETTINGS and "tools" not in config.prompt.strategies:
        return (
            f"{flag} is a setting of the tools strategy, but this run has no tools strategy, so it would be "
            f"ignored; add --strategies tools, or leave {flag} out"
        )
    if setting == "prompt.similar_templates" and config.prompt.similar_templates and config.prompt.shots == 0:
        return (
            f"{flag} chooses which template images the shots show, but --shots is 0, so no template is shown "
            f"and it would be ignored; give --shots 1 (or more), or leave {flag} out"
        )
    return None


def unused_settings(config: RunConfig, explicit: Collection[str]) -> list[Unused]:
    """The explicitly given settings (dotted names) that this run would not use."""
    from mmad.run.config import SECTIONS

    found: list[Unused] = []
    for setting in sorted(explicit):
        section, _, field = setting.partition(".")
        if section not in SECTIONS or field not in SECTIONS[section].model_fields:
            continue
        default = SECTIONS[section]().model_dump()[field]
        if getattr(getattr(config, section), field) == default:
            continue
        why = _why_unused(config, setting)
        if why is not None:
            found.append(Unused(setting, why))
    return found


def refuse_unused(
    config: RunConfig, explicit: Collection[str], *, source: str = "", file_keys: Collection[str] = ()
) -> None:
    """ConfigError naming the first setting that would be ignored (and how many more there are); one of
    ``file_keys`` (a run file's keys, `mmad.evaluate`'s keywords) by its name: the user typed no flag."""

    def named(setting: str) -> str:
        return setting.partition(".")[2] if setting in file_keys else _flag(setting)

    found = unused_settings(config, explicit)
    if not found:
        return
    more = f" (and {len(found) - 1} more: {', '.join(named(u.setting) for u in found[1:])})" if len(found) > 1 else ""
    prefix = f"{source}: " if source else ""
    message = found[0].message
    if found[0].setting in file_keys:
        from mmad.run.config import in_callers_words

        # the fix it suggests too (add engine ray, not --engine ray): only a flag typed beside a file keeps its flag
        message = in_callers_words(message, flagged=set(explicit) - set(file_keys))
    raise ConfigError(prefix + message + more)
