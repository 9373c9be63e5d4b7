"""The HTML report: leaderboard with published rows, escaped model text, one self-contained file."""

import asyncio
from pathlib import Path

from mmad import RunConfig
from mmad.api import evaluate_async
from mmad.cli import main
from mmad.models.base import Completion, Model, Request

EVIL = "<script>alert('pwned')</script> <img src=x onerror=alert(1)>"


class Hostile(Model):
    name = "hostile"

    async def generate(self, request: Request) -> Completion:
        return Completion(text=f"Answer: B {EVIL}")


def test_report_escapes_model_text_and_ranks_runs(mmad_json: Path, tmp_path: Path, reference_dir: Path) -> None:
    config = RunConfig.from_flat("hostile", str(mmad_json), cache=False)
    asyncio.run(evaluate_async(config, out=tmp_path / "run", model=Hostile()))
    out = tmp_path / "report.html"
    published = reference_dir / "official" / "all_result"
    assert main(["report", str(tmp_path / "run"), "--published", str(published), "--out", str(out)]) == 0
    page = out.read_text()
    assert EVIL not in page and "&lt;script&gt;" in page and "&lt;img src=x onerror" in page
    assert "<script" not in page
    assert "gpt-4o" in page and "74.31" in page and "hostile" in page
    assert page.count("data:image/png;base64,") == 1  # the heatmap is embedded
    assert page.index("Qwen2-VL-72B-Instruct") < page.index("gpt-4o")  # sorted by average
