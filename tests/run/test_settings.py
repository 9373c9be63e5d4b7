"""One name per setting (issue #23): every field of the run config is reachable from every entry point
by that name, and every entry point's settings are fields, in both directions.

The entry points: a run file (at the top level and in its section), `mmad eval`'s flags (the kebab of
the name, and the old flags users' scripts say), `mmad.evaluate`'s keywords, a sweep's cell settings
(or its grid axes), the protocol card and docs/settings.md. The tests are parametrized over the schema,
so a field added later is covered without a line here (a field whose sample value the schema cannot
give needs one in SAMPLES).

`python -m tests.run.test_settings` rewrites the table in docs/settings.md from the schema.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import re
import sys
import tempfile
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest

from mmad.errors import ConfigError
from mmad.run.config import (
    FLAT_NAMES,
    OLD_FLAGS,
    OLD_NAMES,
    SECTIONS,
    ProtocolName,
    RunConfig,
    flag_of,
    setting_default,
    setting_help,
)

DOCS = Path(__file__).parents[2] / "docs" / "settings.md"
TABLE_START = "<!-- the table below is generated from the schema: python -m tests.run.test_settings -->"
TABLE_END = "<!-- end of the generated table -->"

HF = "hf:tiny"
SERVED = "vllm:served"
# A setting whose value the schema cannot make up, or that needs another setting or a model to be used
# (a setting the run would ignore is refused): (value, other settings it needs, model).
SAMPLES: dict[str, tuple[Any, dict[str, Any], str]] = {
    "protocol": ("cumulative", {}, "random"),
    "strategies": (["rag", "cot"], {"protocol": "per-image"}, "random"),
    "knowledge": ("/abs/knowledge.json", {"strategies": ["rag"]}, "random"),
    "cot_history": (True, {"strategies": ["cot"]}, "random"),
    "judge": ("openai:gpt-4o-mini", {}, "random"),
    "judge_base_url": ("http://127.0.0.1:9/v1", {"judge": "compat:judge"}, "random"),
    "answer_from": ("likelihood", {}, "random"),
    "datasets": (["VisA"], {}, "random"),
    "categories": (["candle"], {}, "random"),
    "subtasks": (["Anomaly Detection"], {}, "random"),
    "seed": (3, {"limit": 5}, "random"),
    "exclude": (["dataset:VisA"], {}, "random"),
    "prices": ("/abs/prices.json", {}, "random"),
    "cache_dir": ("/abs/cache", {}, "random"),
    "ray_address": ("auto", {"engine": "ray"}, "random"),
    "ray_actors": (3, {"engine": "ray"}, "random"),
    "ray_gpus": (1.0, {"engine": "ray"}, HF),
    "base_url": ("http://127.0.0.1:9/v1", {}, SERVED),
    "key_env": ("MY_KEY", {}, SERVED),
    "extra_body": ({"top_k": 1}, {}, SERVED),
    "text_only": (True, {"blind": True}, SERVED),
    "device": ("cpu", {}, HF),
    "dtype": ("float32", {}, HF),
    "batch_size": (2, {}, HF),
    "model_args": ({"trust_remote_code": True}, {}, HF),
    "tools": (["zoom"], {"strategies": ["tools"]}, "random"),
    "max_turns": (2, {"strategies": ["tools"]}, "random"),
    "tool_protocol": ("text", {"strategies": ["tools"]}, "random"),
    "blend": (0.5, {"strategies": ["tools"]}, "random"),
    "perturb": ("blur=2", {}, "random"),
}
# The options of `mmad eval` and the keywords of `mmad.evaluate` that are not settings.
EVAL_CONTROL = {"model", "data", "out", "resume", "config_file", "recipe", "dry_run"}
EVALUATE_CONTROL = {"model", "data", "out", "resume", "recipe", "on_progress", "old_names"}
# Sweep axes: a cell's value of these comes from the grid, not from its settings; each axis is the
# setting's own name with a list of values.
AXES = frozenset({"protocol", "shots", "similar_templates", "strategies", "circular"})
# Card keys that stand for settings of other names: the clean split is one entry for its two settings.
CARD_KEY = {"errata": "clean_split", "exclude": "clean_split"}
# Settings on the card only on some benchmarks (the test tree is not one): the docs table says when.
CARD_WHEN = {"errata": "yes, where the shipped errata name a question of the benchmark"}


def _base(hint: Any) -> Any:
    """A hint without its Annotated metadata."""
    return get_args(hint)[0] if hasattr(hint, "__metadata__") else hint


def _kinds(hint: Any) -> set[str]:
    """The kinds of value a type admits: int, float, bool, str, none, list, dict and literal:VALUE."""
    hint = _base(hint)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return set().union(*(_kinds(a) for a in get_args(hint)))
    if origin is typing.Literal:
        return {f"literal:{getattr(a, 'value', a)}" for a in get_args(hint)}
    if hint is type(None) or hint is None:
        return {"none"}
    if origin in (list, collections.abc.Sequence):
        return {"list"}
    if origin in (dict, collections.abc.Mapping):
        return {"dict"}
    if isinstance(hint, type) and issubclass(hint, bool):
        return {"bool"}
    if isinstance(hint, type) and issubclass(hint, int):
        return {"int"}
    if isinstance(hint, type) and issubclass(hint, float):
        return {"float", "int"}  # a whole number fills a float setting
    if isinstance(hint, type) and issubclass(hint, str) and hasattr(hint, "__members__"):  # a StrEnum
        return {f"literal:{m.value}" for m in hint.__members__.values()}
    if isinstance(hint, type) and issubclass(hint, str):
        return {"str"}
    return {getattr(hint, "__name__", str(hint))}


def _field(name: str) -> Any:
    section, field = FLAT_NAMES[name]
    return SECTIONS[section].model_fields[field]


def _made_up(name: str) -> Any:
    """A value other than the default, from the field's type."""
    default = setting_default(name)
    kinds = _kinds(_field(name).annotation)
    literals = sorted(k.removeprefix("literal:") for k in kinds if k.startswith("literal:"))
    if literals:
        return next(v for v in literals if v != default)
    if "bool" in kinds:
        return not default
    if "int" in kinds and "float" not in kinds:
        return (default or 0) + 1
    if "float" in kinds:
        return (default or 0.0) + 0.5
    if "str" in kinds:
        return "made-up"
    raise AssertionError(f"{name}: give it a value in SAMPLES (its type gives none)")


def sample(name: str) -> tuple[Any, dict[str, Any], str]:
    """(a non-default value, the other settings it needs, the model) of a setting."""
    return SAMPLES.get(name) or (_made_up(name), {}, "random")


def _reference(name: str) -> Any:
    """The field's value when the setting is given in its section of a run file (the nested form)."""
    value, needs, model = sample(name)
    nested: dict[str, dict[str, Any]] = {}
    for flat, given in {**needs, name: value}.items():
        section, field = FLAT_NAMES[flat]
        nested.setdefault(section, {})[field] = given
    config = RunConfig.from_nested({"model": model, "data": "d", **nested})
    got = _value(config, name)
    assert got != setting_default(name), f"{name}: the sample {value!r} is its default"
    return got


def _value(config: RunConfig, name: str) -> Any:
    section, field = FLAT_NAMES[name]
    value = getattr(getattr(config, section), field)
    return getattr(value, "value", value)


def _as_file_value(value: Any) -> Any:
    return "none" if value is None else value


SETTINGS = list(FLAT_NAMES)


# Field -> each entry point (and back to the same field)


@pytest.mark.parametrize("name", SETTINGS)
def test_a_run_file_sets_each_setting_by_its_name_at_the_top_level_and_in_its_section(
    name: str, tmp_path: Path
) -> None:
    value, needs, model = sample(name)
    section = FLAT_NAMES[name][0]
    top = tmp_path / "top.json"
    top.write_text(json.dumps({"model": model, "data": "d", **needs, name: _as_file_value(value)}))
    nested = tmp_path / "nested.json"
    nested.write_text(
        json.dumps({"model": model, "data": "d", **needs, section: {name: _as_file_value(value)}}), encoding="utf-8"
    )
    expected = _reference(name)
    assert _value(RunConfig.from_file(top), name) == expected
    assert _value(RunConfig.from_file(nested), name) == expected


def _flag_args(name: str, value: Any, flag: str | None = None) -> list[str]:
    flag = flag or flag_of(*FLAT_NAMES[name])
    if isinstance(value, bool):
        return [flag] if value else ["--no-" + flag.removeprefix("--")]
    if isinstance(value, list):
        return [part for item in value for part in (flag, str(item))]
    if isinstance(value, dict):
        return [flag, json.dumps(value)]
    return [flag, "none" if value is None else str(value)]


def _eval_command() -> Any:
    import typer.main

    from mmad.cli import _register, app

    _register()
    return typer.main.get_command(app).commands["eval"]  # type: ignore[attr-defined]


def _from_command_line(model: str, args: list[str]) -> RunConfig:
    """The config `mmad eval` makes from these flags (click parses them as on the command line)."""
    from mmad.cli.setting_flags import settings_from_flags

    context = _eval_command().make_context("eval", ["-m", model, "-d", "d", *args])
    return RunConfig.from_flat(model, "d", recipe=context.params["recipe"], **settings_from_flags(context.params))


@pytest.mark.parametrize("name", SETTINGS)
def test_mmad_eval_sets_each_setting_by_the_kebab_of_its_name(name: str) -> None:
    value, needs, model = sample(name)
    args = [part for flat, given in needs.items() for part in _flag_args(flat, given)]
    assert _value(_from_command_line(model, [*args, *_flag_args(name, value)]), name) == _reference(name)


@pytest.mark.parametrize(("name", "old"), [(n, f) for n, flags in OLD_FLAGS.items() for f in flags])
def test_the_flags_users_scripts_say_still_set_the_same_setting(name: str, old: str) -> None:
    value, needs, model = sample(name)
    args = [part for flat, given in needs.items() for part in _flag_args(flat, given)]
    assert _value(_from_command_line(model, [*args, *_flag_args(name, value, old)]), name) == _reference(name)


def _captured_config(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> RunConfig:
    """The config `mmad.evaluate` builds from its keywords (the run itself is not what is tested here)."""
    import mmad.api

    seen: list[RunConfig] = []

    async def capture(config: RunConfig, **_: Any) -> Any:
        seen.append(config)
        raise KeyboardInterrupt  # stops evaluate before anything is asked

    monkeypatch.setattr(mmad.api, "evaluate_async", capture)
    with pytest.raises(KeyboardInterrupt):
        mmad.api.evaluate(**kwargs)
    return seen[0]


@pytest.mark.parametrize("name", SETTINGS)
def test_mmad_evaluate_takes_each_setting_as_a_keyword_of_its_name(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    value, needs, model = sample(name)
    config = _captured_config(monkeypatch, model=model, data="d", **needs, **{name: value})
    assert _value(config, name) == _reference(name)


@pytest.mark.parametrize("name", SETTINGS)
def test_a_sweep_cell_takes_each_setting_by_its_name_or_its_axis(name: str) -> None:
    from mmad.run.sweep import SweepSpec

    value, needs, model = sample(name)
    grid: dict[str, Any] = {"data": "d", "models": [model], "settings": {}}
    for flat, given in {**needs, name: value}.items():
        if flat in AXES:
            grid[flat] = [given]
        else:
            grid["settings"][flat] = _as_file_value(given)
    (cell,) = SweepSpec.parse(grid).cells()
    assert _value(cell.config, name) == _reference(name)


# Each entry point -> a field


def test_every_option_of_mmad_eval_is_a_setting_or_one_of_its_own() -> None:
    options = {p.name: p for p in _eval_command().params if p.name != "help"}
    assert set(options) - EVAL_CONTROL == set(FLAT_NAMES)
    for name in FLAT_NAMES:
        assert flag_of(*FLAT_NAMES[name]) == "--" + name.replace("_", "-")
        assert flag_of(*FLAT_NAMES[name]) in options[name].opts
        assert set(OLD_FLAGS.get(name, ())) <= set(options[name].opts)
        assert setting_help(name) in (options[name].help or "")  # the schema's words and default


def test_mmad_evaluate_has_a_typed_keyword_per_setting_in_the_schemas_order() -> None:
    """The signature is written out (an IDE completes it, a type checker reads it); this keeps it the
    schema's: the same names in the same order, each admitting what the field admits."""
    import mmad.api

    parameters = inspect.signature(mmad.api.evaluate).parameters
    names = [n for n in parameters if n not in EVALUATE_CONTROL]
    missing = [n for n in FLAT_NAMES if n not in names]
    assert not missing, f"add these keywords to mmad.api.evaluate, typed as their fields: {missing}"
    assert names == list(FLAT_NAMES)
    hints = typing.get_type_hints(mmad.api.evaluate)
    for name in FLAT_NAMES:
        field = _kinds(_field(name).annotation)
        given = _kinds(hints[name])
        assert field - given <= {"none"} | ({"int"} if "float" in given else set()), (name, field - given)
        if "none" in field and setting_default(name) is not None:
            assert {"none", "literal:none"} <= given, f"{name}: None must be sayable, as None or 'none'"
    assert set(get_args(ProtocolName)) == {v for k in _kinds(_field("protocol").annotation) for v in [k[8:]]}


@pytest.mark.slow
def test_a_type_checker_reads_mmad_evaluates_keywords(tmp_path: Path) -> None:
    """`mmad.evaluate` was Any to a type checker (mmad loads its exports lazily) and took any keyword
    (``**old_names: Any``): a misspelt setting passed mypy and an IDE offered no completion."""
    import mypy.api as mypy_api  # a dev dependency: a skip here would hide the check

    script = tmp_path / "use.py"
    script.write_text(
        "import numpy as np\nimport mmad\n\n"
        'mmad.evaluate("random", "d", image_sise=1)\n'
        'mmad.evaluate("random", "d", image_size=np.int64(256), limit=None, detail="none", temperature=np.float32(0))\n'
        'mmad.evaluate("random", "d", timeout=30, strategy="cot")  # the old names, typed as before\n',
        encoding="utf-8",
    )
    config = Path(__file__).parents[2] / "pyproject.toml"
    out, err, _ = mypy_api.run(["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), str(script)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'use.py:4: error: Unexpected keyword argument "image_sise"' in errors[0], out + err


def test_mmad_evaluates_old_names_are_the_configs() -> None:
    from mmad.api import OldNames

    assert set(OldNames.__annotations__) == set(OLD_NAMES)


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_an_old_name_still_sets_its_setting_with_a_warning(old: str, tmp_path: Path) -> None:
    from mmad.run.sweep import SweepSpec

    name = OLD_NAMES[old]
    value, needs, model = sample(name)
    expected = _reference(name)
    if name in AXES:
        needs = {}
    with pytest.warns(FutureWarning, match=rf"'{old}' is the old name of the setting '{name}'"):
        assert _value(RunConfig.from_flat(model, "d", **needs, **{old: value}), name) == expected
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps({"model": model, "data": "d", **needs, old: _as_file_value(value)}))
    with pytest.warns(FutureWarning, match=rf"run.json: '{old}' is the old name"):
        assert _value(RunConfig.from_file(run_file), name) == expected
    if name not in AXES:
        grid = {"data": "d", "models": [model], "settings": {**needs, old: _as_file_value(value)}}
        with pytest.warns(FutureWarning, match=rf"'{old}' is the old name"):
            (cell,) = SweepSpec.parse(grid).cells()
        assert _value(cell.config, name) == expected


def test_mmad_evaluates_old_name_warning_points_at_the_callers_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """It pointed at a line of mmad.run.config, so a script's author could not tell which call to change."""
    with pytest.warns(FutureWarning, match="'similar' is the old name") as caught:
        _captured_config(monkeypatch, model="random", data="d", similar=True)
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]
    with pytest.raises(ConfigError, match="timeout_s is given twice"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        _captured_config(monkeypatch, model="random", data="d", timeout_s=3, timeout=4)


def test_a_numpy_number_out_of_range_is_shown_as_the_number_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np  # a dependency of mmad: never skipped

    with pytest.raises(ConfigError, match=r"must be at least 1 \(got 0\)$"):
        _captured_config(monkeypatch, model="random", data="d", max_tokens=np.int64(0))


def test_a_setting_given_by_both_its_names_is_refused() -> None:
    twice = "timeout_s is given twice, as timeout_s and by its old name timeout"
    with pytest.raises(ConfigError, match=twice), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        RunConfig.from_flat("random", "d", timeout_s=3, timeout=4)


@pytest.mark.parametrize("first", ["strategies", "strategy"])
@pytest.mark.parametrize("where", ["top", "section", "flat"])
def test_both_names_of_a_setting_are_refused_naming_each_as_written(first: str, where: str, tmp_path: Path) -> None:
    """In either order: the old name first read 'as strategies and by its old name strategies', and two
    top-level keys 'as strategy at the top level and in [prompt]'."""
    second = "strategy" if first == "strategies" else "strategies"
    given = {first: "cot", second: "rag"}
    expected = "strategies is given twice, as strategies and by its old name strategy; keep strategies"
    if where == "top":
        expected = "strategies is given twice at the top level, as strategies and strategy; keep strategies"
    run_file = tmp_path / "run.json"
    run_file.write_text(
        json.dumps({"model": "random", "data": "d", **({"prompt": given} if where == "section" else given)})
    )
    with pytest.raises(ConfigError, match=re.escape(expected)), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if where == "flat":
            RunConfig.from_flat("random", "d", **given)
        else:
            RunConfig.from_file(run_file)


@pytest.mark.parametrize(
    ("key", "values", "field", "expected"),
    [
        ("protocol", ["per-question", "cumulative"], "protocol", ["per-question", "cumulative"]),
        ("similar_templates", [False, True], "similar_templates", [False, True]),
        ("strategies", ["none", "rag"], "strategies", [[], ["rag"]]),
        ("recipe", ["gpt4o"], "recipe", ["gpt4o"]),
    ],
)
def test_a_sweeps_axis_is_the_settings_own_name(key: str, values: list[Any], field: str, expected: Any) -> None:
    """protocol = [...] in [sweep] was refused with 'write it as protocols = [...]': the axis had another name."""
    from mmad.run.sweep import SweepSpec

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the one name is read without a warning
        spec = SweepSpec.parse({"data": "d", "models": ["random"], "shots": [1], key: values})
    assert getattr(spec, field) == expected


@pytest.mark.parametrize(
    ("old", "values", "field", "expected"),
    [
        ("protocols", ["cumulative"], "protocol", ["cumulative"]),
        ("templates", ["random", "similar"], "similar_templates", [False, True]),
        ("recipes", ["gpt4o"], "recipe", ["gpt4o"]),
        ("similar", [True], "similar_templates", [True]),
        ("strategy", ["cot"], "strategies", [["cot"]]),
    ],
)
def test_a_sweeps_old_axis_name_is_read_with_one_warning(
    old: str, values: list[Any], field: str, expected: Any
) -> None:
    from mmad.run.sweep import SweepSpec

    with pytest.warns(FutureWarning, match=rf"the sweep: {old!r} is the old name of the grid's axis {field!r}") as got:
        spec = SweepSpec.parse({"data": "d", "models": ["random"], old: values})
    assert len(got) == 1 and getattr(spec, field) == expected
    # sweep.json of a sweep made before keeps resuming, without a warning: the user did not write it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            getattr(SweepSpec.parse({"data": "d", "models": ["random"], old: values}, recorded=True), field) == expected
        )


def test_a_sweeps_axis_by_both_names_or_old_words_under_the_new_name_is_refused() -> None:
    from mmad.run.sweep import SweepSpec

    grid: dict[str, Any] = {"data": "d", "models": ["random"]}
    with pytest.raises(
        ConfigError, match=r"similar_templates is given twice, as similar_templates and by its old name templates"
    ):
        SweepSpec.parse({**grid, "similar_templates": [True], "templates": ["random"]})
    with pytest.raises(
        ConfigError,
        match=r"similar_templates\.1: is true or false, not 'similar'; write similar_templates = \[false, true\]",
    ):
        SweepSpec.parse({**grid, "similar_templates": [False, "similar"]})
    with (
        pytest.raises(ConfigError, match=r"templates holds 'alike': its values are random and similar"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", FutureWarning)
        SweepSpec.parse({**grid, "templates": ["alike"]})


def test_a_sweeps_cells_keep_their_names_with_the_one_name() -> None:
    """Cell folders are named random/similar as before: a sweep started with templates = [...] resumes into them."""
    from mmad.run.sweep import SweepSpec

    spec = SweepSpec.parse({"data": "d", "models": ["random"], "shots": [0, 1], "similar_templates": [False, True]})
    cells = {c.name: c.config.prompt.similar_templates for c in spec.cells()}
    assert cells == {
        "random_per-question_0shot_random_plain": False,
        "random_per-question_1shot_random_plain": False,
        "random_per-question_1shot_similar_plain": True,
    }


def test_a_run_recorded_with_the_old_image_names_reads_without_a_warning() -> None:
    """run.json of runs made before the one names says [images] size, format, original."""
    recorded = RunConfig.from_flat("random", "d").model_dump(mode="json")
    recorded["images"] = {"size": None, "format": "png", "original": True, "detail": "low"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = RunConfig.model_validate(recorded)
    assert (config.images.image_size, config.images.image_format, config.images.original_images) == (None, "png", True)


# "Keep the size" and "no detail" said everywhere


@pytest.mark.parametrize(("name", "spelt"), [("image_size", 0), ("image_size", "none"), ("detail", "none")])
def test_keep_the_size_and_no_detail_are_said_the_same_everywhere(
    name: str, spelt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmad.run.sweep import SweepSpec

    run_file = tmp_path / "run.toml"
    run_file.write_text(f'model = "random"\ndata = "d"\n{name} = {json.dumps(spelt)}\n')
    assert _value(RunConfig.from_file(run_file), name) is None
    section = tmp_path / "section.toml"
    section.write_text(f'model = "random"\ndata = "d"\n[images]\n{name} = {json.dumps(spelt)}\n')
    assert _value(RunConfig.from_file(section), name) is None
    assert _value(_from_command_line("random", [flag_of("images", name), str(spelt)]), name) is None
    assert _value(_captured_config(monkeypatch, model="random", data="d", **{name: spelt}), name) is None
    assert _value(_captured_config(monkeypatch, model="random", data="d", **{name: None}), name) is None
    (cell,) = SweepSpec.parse({"data": "d", "models": ["random"], "settings": {name: spelt}}).cells()
    assert _value(cell.config, name) is None


# Settings a backend does not read


@pytest.mark.parametrize("model", [HF, "vllm-local:tiny"])
@pytest.mark.parametrize(("name", "value"), [("image_size", 256), ("detail", "high"), ("original_images", True)])
def test_image_settings_a_backend_does_not_read_are_refused_by_name(model: str, name: str, value: Any) -> None:
    flag = flag_of("images", name)
    with pytest.raises(ConfigError, match=rf"{flag} would be ignored: {model} reads the image files itself"):
        RunConfig.from_flat(model, "d", **{name: value})


def test_a_run_files_setting_the_backend_does_not_read_is_refused_by_its_key(tmp_path: Path) -> None:
    """The file's image_size was refused as '--image-size ...; leave --image-size out': a flag never typed."""
    run_file = tmp_path / "run.toml"
    run_file.write_text(f'model = "{HF}"\ndata = "d"\n[images]\nimage_size = 256\n')
    with pytest.raises(ConfigError) as refused:
        RunConfig.from_file(run_file)
    assert str(refused.value) == (
        f"{run_file}: image_size would be ignored: {HF} reads the image files itself (its own processor prepares "
        "them); leave image_size out"
    )
    with pytest.raises(ConfigError, match="--image-size would be ignored"):  # a flag on top is named as typed
        RunConfig.from_file(run_file, image_size=128)
    run_file.write_text(f'model = "{HF}"\ndata = "d"\nimage_size = 256\ndetail = "high"\n')
    with pytest.raises(
        ConfigError, match=r"(image_size|detail) would be ignored: .* \(and 1 more: (detail|image_size)\)"
    ):
        RunConfig.from_file(run_file)


def test_mmad_evaluates_setting_the_backend_does_not_read_is_refused_by_its_keyword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match=r"^image_size would be ignored: hf:tiny .*; leave image_size out$"):
        _captured_config(monkeypatch, model=HF, data="d", image_size=256)


def test_a_recipes_image_settings_are_announced_and_left_out_of_the_card_and_cache_key(mmad_json: Path) -> None:
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import StrategySet
    from mmad.run.card import protocol_card

    benchmark = load_benchmark(mmad_json)
    local = RunConfig.from_flat("vllm-local:tiny", str(mmad_json), recipe="gpt4o")
    (note,) = local.recipe_notes()
    assert "gpt4o recipe's image_size = 512" in note and "vllm-local:tiny reads the image files itself" in note
    card = protocol_card(local, benchmark, StrategySet())
    assert card["images"] == {}  # nothing of the images is its to choose
    # what it is sent, whatever the recipe said: the files' own bytes (so the cache key does not depend on them)
    plain = RunConfig.from_flat("vllm-local:tiny", str(mmad_json))
    assert local.image_settings() == plain.image_settings() and local.image_settings().original
    # a model behind an API reads them: on its card, by their names, and no note
    served = RunConfig.from_flat("openai:gpt-4o", str(mmad_json), recipe="gpt4o")
    assert served.recipe_notes() == []
    assert protocol_card(served, benchmark, StrategySet())["images"]["image_size"] == 512


def test_a_recipes_decoding_settings_the_expert_does_not_read_are_announced_as_such() -> None:
    """The note said the expert's unread max_tokens 'reads the image files itself ... left out of the card'."""
    images, decoding = RunConfig.from_flat("expert", "d", recipe="gpt4o").recipe_notes()
    assert "image_size = 512" in images and "max_tokens" not in images
    assert decoding == (
        'the gpt4o recipe\'s max_tokens = 200, temperature = "none" are not used: expert does not read them '
        "(mmad models says what it reads)"
    )


def test_decoding_settings_the_expert_does_not_read_are_left_out_of_its_card(mmad_json: Path) -> None:
    """As the image settings of a backend that reads the files: the expert writes no text, so a recipe's
    max_tokens (announced as not used) gave its run another card hash for the same answers."""
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import StrategySet
    from mmad.run.card import protocol_card

    benchmark = load_benchmark(mmad_json)
    expert = RunConfig.from_flat("expert", str(mmad_json))
    assert protocol_card(expert, benchmark, StrategySet())["decoding"] == {}
    plain = protocol_card(RunConfig.from_flat("random", str(mmad_json)), benchmark, StrategySet())
    assert plain["decoding"] == {"max_tokens": 128, "temperature": 0.0}


def test_old_runs_keep_their_card_hash(mmad_json: Path) -> None:
    """A card written before the settings had one name (templates, images.size, ...) hashes as a card of
    today with the same settings: runs made before stay comparable with runs made since."""
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import StrategySet
    from mmad.run.card import card_differences, card_hash, protocol_card

    card = protocol_card(RunConfig.from_flat("random", str(mmad_json)), load_benchmark(mmad_json), StrategySet())
    old = {k: v for k, v in card.items() if k not in {"similar_templates", "hash"}}
    old["templates"] = "random"
    old["images"] = {{"image_size": "size", "image_format": "format", "original_images": "original"}.get(k, k): v
                     for k, v in card["images"].items()}  # fmt: skip
    assert card_hash(old) == card["hash"]
    assert card_differences(old, card) == []


# Field -> card and docs


def _card_keys(name: str, mmad_json: Path) -> set[str]:
    """The card keys (top-level, or nested as images.x) that change when the setting is given."""
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.card import protocol_card

    value, needs, model = sample(name)
    benchmark = load_benchmark(mmad_json)

    def card(config: RunConfig) -> dict[str, Any]:
        return protocol_card(config, benchmark, parse_strategies(config.prompt.strategies))

    base = card(RunConfig.from_flat(model, str(mmad_json), **needs))
    with tempfile.TemporaryDirectory() as folder:
        if name == "knowledge":  # the card reads the file: a real one
            value = _knowledge_file(Path(folder) / "knowledge.json", "a dark spot")
        given = card(RunConfig.from_flat(model, str(mmad_json), **needs, **{name: value}))
    keys = set()
    for key in {*base, *given} - {"hash", "prompt_hash"}:
        a, b = base.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != CARD_KEY.get(name):
            keys |= {k for k in {*a, *b} if a.get(k) != b.get(k)}
        elif a != b:
            keys.add(key)
    return keys


def _knowledge_file(path: Path, text: str) -> str:
    path.write_text(json.dumps({"MVTec-AD": {"bottle": {"good": text}}}), encoding="utf-8")
    return str(path)


def test_the_knowledge_files_content_is_on_the_card_of_a_run_that_uses_it(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The prompt hash holds a placeholder for the knowledge text, so runs with different --knowledge files
    looked comparable; the file's content hash on the card tells them apart (and is on no other run's card)."""
    from mmad.cli import main
    from mmad.data.official import load_benchmark
    from mmad.protocol.strategies import parse_strategies
    from mmad.run.card import protocol_card

    benchmark = load_benchmark(mmad_json)

    def card(**settings: Any) -> dict[str, Any]:
        config = RunConfig.from_flat("random", str(mmad_json), **settings)
        return protocol_card(config, benchmark, parse_strategies(config.prompt.strategies))

    one = _knowledge_file(tmp_path / "one.json", "a smooth glass bottle")
    same = _knowledge_file(tmp_path / "same.json", "a smooth glass bottle")
    other = _knowledge_file(tmp_path / "other.json", "a bottle with a cracked neck")
    rag = card(strategies=["rag"], knowledge=one)
    assert rag["knowledge"].startswith("sha256:")
    assert card(strategies=["rag"], knowledge=same)["hash"] == rag["hash"]  # the content, not the path
    assert card(strategies=["rag"], knowledge=other)["hash"] != rag["hash"]
    assert card(strategies=["tools"], knowledge=one)["knowledge"] == rag["knowledge"]  # its knowledge tool
    assert "knowledge" not in card(strategies=["tools"], tools=["zoom"], knowledge=one)
    assert "knowledge" not in card(strategies=["cot"])
    # the card a real run records
    out = tmp_path / "run"
    args = ["eval", "-m", "random", "-d", str(mmad_json), "--strategies", "rag", "--knowledge", other]
    assert main([*args, "--limit", "2", "--no-cache", "--out", str(out)]) == 0, capsys.readouterr().err
    recorded = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert recorded["card"]["knowledge"] == card(strategies=["rag"], knowledge=other)["knowledge"]


@pytest.mark.parametrize("name", SETTINGS)
def test_a_setting_on_the_protocol_card_is_there_by_its_name(name: str, mmad_json: Path) -> None:
    keys = _card_keys(name, mmad_json)
    assert keys <= {name, CARD_KEY.get(name)}, f"{name} changes the card's {keys}: name it {name} there"


def settings_table(mmad_json: Path) -> str:
    """docs/settings.md's table: every setting, its flag, run-file section, default, card, meaning."""
    rows = [
        "| setting | flag | section | default | on the card | what it does |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in FLAT_NAMES:
        section = FLAT_NAMES[name][0]
        flags = [flag_of(section, name), *OLD_FLAGS.get(name, ())]
        if _kind_is_flag(name):
            flags.insert(1, "--no-" + name.replace("_", "-"))
        default = setting_default(name)
        shown = "none" if default is None else json.dumps(default)
        card = CARD_WHEN.get(name) or ("yes" if _card_keys(name, mmad_json) else "no")
        description = (_field(name).description or "").replace("|", "\\|")
        rows.append(
            f"| `{name}` | {', '.join(f'`{f}`' for f in flags)} | `[{section}]` | `{shown}` | {card} | {description} |"
        )
    return "\n".join(rows)


def _kind_is_flag(name: str) -> bool:
    return _kinds(_field(name).annotation) == {"bool"}


def test_docs_settings_lists_every_setting_as_the_schema_says(mmad_json: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip() if TABLE_START in text else ""
    assert table == settings_table(mmad_json), "docs/settings.md is out of date: python -m tests.run.test_settings"
    for old, new in OLD_NAMES.items():
        assert re.search(rf"`{old}`.*`{new}`", text), f"docs/settings.md does not say {old} is now {new}"


def _write_docs() -> None:
    from tests.helpers.mmad_tree import make_mmad_tree

    with tempfile.TemporaryDirectory() as folder:
        table = settings_table(make_mmad_tree(Path(folder)))
    text = DOCS.read_text(encoding="utf-8")
    before, rest = text.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    DOCS.write_text(f"{before}{TABLE_START}\n\n{table}\n\n{TABLE_END}{after}", encoding="utf-8")


if __name__ == "__main__":
    _write_docs()
    sys.exit(0)


# What the command line says about settings


def _old_flags_in_messages() -> list[str]:
    """'file:line: text' of each string in the package (docstrings aside) that names a setting's old flag."""
    import ast

    old = re.compile(rf"({'|'.join(re.escape(f) for flags in OLD_FLAGS.values() for f in flags)})(?![\w-])")
    package = Path(__file__).parents[2] / "src" / "mmad"
    # config/names.py lists them; the leaderboard's and report's own --dataset and --subtask filter views, not runs
    own = {"run/config/names.py", "cli/report_commands.py", "report/leaderboard/board.py"}
    found = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        if where in own:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found += [
            f"{where}:{node.lineno}: {node.value}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and old.search(node.value)
        ]
    return found


def test_messages_name_each_setting_by_its_flag_not_an_old_one() -> None:
    """An error that says --strategy or --text-only-server sends a user to a flag --help lists only as a
    second name (and a run file's key of that spelling warns)."""
    assert _old_flags_in_messages() == []


def test_mmad_eval_names_a_yes_no_flag_over_a_recipe_as_it_is_typed(
    mmad_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    args = ["eval", "-m", "random", "-d", str(mmad_json), "--recipe", "internvl", "--strategies", "cot"]
    assert main([*args, "--no-cot-history", "--dry-run"]) == 0
    assert "note: --no-cot-history overrides the internvl recipe's cot_history = true" in capsys.readouterr().err


def test_mmad_eval_warns_of_an_old_name_in_a_run_file_on_one_line(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    run_file = tmp_path / "run.toml"
    run_file.write_text(f'model = "random"\ndata = "{mmad_json}"\n[images]\nsize = 256\n')
    assert main(["eval", "--config", str(run_file), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run_file} [images]: 'size' is the old name of the setting 'image_size'; write image_size" in err


def test_mmad_sweep_warns_of_an_old_name_in_its_settings_on_one_line(
    mmad_json: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mmad.cli import main

    grid = tmp_path / "grid.toml"
    grid.write_text(
        f'[sweep]\ndata = "{mmad_json}"\nmodels = ["random"]\nshots = [0]\n'
        "[sweep.settings]\nlimit = 2\ncache = false\ntimeout = 30\n"
    )
    assert main(["sweep", str(grid), "--out", str(tmp_path / "sweep"), "--no-html"]) == 0
    err = capsys.readouterr().err
    assert "warning: [settings]: 'timeout' is the old name of the setting 'timeout_s'; write timeout_s" in err
    recorded = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert recorded["spec"]["settings"]["timeout_s"] == 30  # the grid is kept by the one name


def test_mmad_evaluate_logs_a_recipes_settings_the_backend_does_not_read(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="mmad.api"):
        _captured_config(monkeypatch, model="vllm-local:tiny", data="d", recipe="gpt4o")
    assert "the gpt4o recipe's image_size = 512" in caplog.text and "reads the image files itself" in caplog.text


@pytest.mark.parametrize("name", [n for n in SETTINGS if "none" in _kinds(_field(n).annotation)])
def test_none_on_the_command_line_undoes_a_run_files_value(name: str, tmp_path: Path) -> None:
    """--limit none, --blend none, ... as the docs say: every setting that may be None takes none (a number
    flag refused it unless its default was a number, so a run file's limit could not be undone)."""
    from mmad.cli.setting_flags import settings_from_flags

    value, needs, model = sample(name)
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps({"model": model, "data": "d", **needs, name: _as_file_value(value)}))
    assert _value(RunConfig.from_file(run_file), name) is not None
    context = _eval_command().make_context("eval", ["--config", str(run_file), *_flag_args(name, None)])
    assert _value(RunConfig.from_file(run_file, **settings_from_flags(context.params)), name) is None


def test_a_flag_left_out_sets_nothing_so_a_recipes_value_stays() -> None:
    from mmad.cli.setting_flags import settings_from_flags

    context = _eval_command().make_context("eval", ["-m", "random", "-d", "d"])
    assert settings_from_flags(context.params) == {}
    config = _from_command_line("random", ["--recipe", "internvl", "--strategies", "cot"])
    assert config.prompt.cot_history  # the recipe's yes/no setting is not undone by a flag not given


def test_strategies_none_is_no_strategy_everywhere_as_in_a_sweep(tmp_path: Path) -> None:
    run_file = tmp_path / "run.toml"
    run_file.write_text('model = "random"\ndata = "d"\nstrategies = ["rag"]\n')
    assert RunConfig.from_file(run_file).prompt.strategies == ["rag"]
    assert RunConfig.from_file(run_file, strategies=["none"]).prompt.strategies == []  # a flag clears the file's
    assert _from_command_line("random", ["--strategies", "none"]).prompt.strategies == []
    assert RunConfig.from_flat("random", "d", strategies="none").prompt.strategies == []
