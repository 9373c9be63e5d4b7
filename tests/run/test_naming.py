"""The official answers file name a run writes, as the official scripts name theirs.

jam-cc/MMAD evaluation/examples/ (the lines of the released scripts):
- Transformers/internvl_query.py 285: ``model_name = os.path.split(model_path.rstrip('/'))[-1]`` (the base
  name, ``InternVL2-8B``); 304-305 ``_Similar_template``, 306-307 ``_Domain_knowledge``, 311-312
  ``_Agent-`` + agent_model + ``-with-`` + agent_notation, 329-330 ``_CoT``, 331-332 ``_Debug``;
  337 ``answers_json_path = f"result/answers_{args.few_shot_model}_shot_{model_name}.json"``.
- LLaVA_Query/llava_query.py 309: the base name; 310-311 ``_CoT``, 312-313 ``_Domain_knowledge``,
  316-317 ``_Text_only``, 318-319 ``_Similar_template``, 320-321 ``_Agent``; 323 the path.
- Transformers/qwen2_5_vl_query.py 163: the base name; 164-165 ``_Similar_template``, 166-167
  ``_Domain_knowledge``; 171 the path.
- GPT4/gpt4o.py 342-345 (and gpt4o-mini.py 353-356, Gemini/gemini_query.py 287-291): the model name,
  then ``_Similar_template``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmad.cli import main
from mmad.run.config import RunConfig
from mmad.run.naming import answers_file_name


@pytest.mark.parametrize(
    ("model", "recipe", "settings", "expected"),
    [
        ("hf:OpenGVLab/InternVL2-8B", "internvl", {"strategies": ["cot"]}, "answers_1_shot_InternVL2-8B_CoT.json"),
        ("hf:/models/InternVL2-8B/", "internvl", {}, "answers_1_shot_InternVL2-8B.json"),
        (
            "hf:OpenGVLab/InternVL2-8B",
            "internvl",
            {"strategies": ["cot", "rag", "agent:gt:bbox"], "similar_templates": True, "subset": "official-debug"},
            "answers_1_shot_InternVL2-8B_Similar_template_Domain_knowledge_Agent-GT-with-bbox_CoT_Debug.json",
        ),
        (
            "hf:liuhaotian/llava-v1.5-7b",
            "llava",
            {"strategies": ["rag", "cot"], "similar_templates": True, "blind": True},
            "answers_1_shot_llava-v1.5-7b_CoT_Domain_knowledge_Text_only_Similar_template.json",
        ),
        (
            "vllm:Qwen/Qwen2.5-VL-7B-Instruct",
            "qwen2.5-vl",
            {"strategies": ["rag"], "similar_templates": True},
            "answers_1_shot_Qwen2.5-VL-7B-Instruct_Similar_template_Domain_knowledge.json",
        ),
        ("openai:gpt-4o", "gpt4o", {"similar_templates": True}, "answers_1_shot_gpt-4o_Similar_template.json"),
    ],
)
def test_a_recipe_runs_answers_file_is_named_as_its_script_names_it(
    model: str, recipe: str, settings: dict[str, object], expected: str
) -> None:
    assert answers_file_name(RunConfig.from_flat(model, "data", recipe=recipe, **settings)) == expected


def test_other_runs_keep_the_model_slug_with_the_official_spellings() -> None:
    """Without a recipe there is no script to follow for the model part: the slug stays (a repo id's
    owner tells two checkpoints apart); the options are still spelled as every script spells them."""
    config = RunConfig.from_flat("hf:OpenGVLab/InternVL2-8B", "data", strategies=["cot", "rag"])
    assert answers_file_name(config) == "answers_1_shot_OpenGVLab-InternVL2-8B_Domain_knowledge_CoT.json"


def test_a_cot_recipe_run_writes_the_scripts_file(mmad_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["eval", "-m", "random", "-d", str(mmad_json), "--recipe", "internvl", "--strategy", "cot"]
    assert main([*args, "--out", str(out), "--no-cache", "--limit", "4"]) == 0
    assert (out / "answers_1_shot_random_CoT.json").is_file()
    assert (out / "answers_1_shot_random_CoT_accuracy.csv").is_file()
    assert not list(out.glob("*_cot*"))
