"""The agent strategy: an expert's output drawn on an extra image placed after the query.

The prompt names the image's file (`AgentRenderer.part_for`); the ``agent-render`` solver
(`mmad.solvers.agent`) draws it before the prompt is sent.

As ``Transformers/internvl_query.py`` with ``--agent`` (jam-cc/MMAD): the expert (``expert``,
mmad's PatchCore-style detector standing in for SoftPatch) is fitted on the query's templates of
the run's kind -- ``random_templates[:k]``, or ``similar_templates[:k]`` with ``--similar`` -- and
its map drawn by `mmad.expert.render`. The oracle (``gt``) draws the ground-truth mask; for a
normal image it returns the plain image at its own size, as ``call_ground_truth`` does, which
leaks the label: it is an upper bound, not a method.

A missing or unreadable mask, template or image raises `DataError` naming the file; the runner
records it as that image's failure.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from mmad.data.schema import Benchmark, ImageItem
from mmad.errors import ConfigError, DataError
from mmad.expert.render import render_expert, render_oracle
from mmad.protocol.messages import ImagePart
from mmad.protocol.official_text import AGENT_TEXTS

# call_ground_truth reads every file of a mask folder (MVTec LOCO) with one of these endings.
_MASK_ENDINGS = (".png", ".jpg", ".jpeg")


def open_rgb(path: Path, what: str) -> Image.Image:
    """An image file as RGB; DataError naming the file when it cannot be read (the tools read theirs so too)."""
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError) as exc:
        msg = f"cannot read the {what} {path}: {exc}; run `mmad validate` on the data root"
        raise DataError(msg) from exc


def mask_files(benchmark: Benchmark, item: ImageItem) -> list[Path] | None:
    """The ground-truth mask file(s) of an item, found as call_ground_truth finds them; None for no mask.

    ``mask_path`` is relative to ``{dataset}/{category}/`` (internvl_query.py), or to
    ``{dataset}/{category}/{split}/`` (generate_metadata.py), tried second. At each base: a folder
    named like the file without its extension holds several masks (MVTec LOCO); else the file;
    else the same name with ``.jpg`` replaced by ``.png`` (call_ground_truth's fallback).
    """
    if not item.mask_path:
        return None
    parts = item.parts
    tried: list[str] = []
    for base in dict.fromkeys(["/".join(parts[:2]), "/".join(parts[:3])]):
        path = benchmark.resolve(f"{base}/{item.mask_path}")
        folder = path.with_suffix("")
        if folder.is_dir():
            files = sorted(f for f in folder.iterdir() if f.name.endswith(_MASK_ENDINGS))
            if not files:
                msg = f"the mask folder {folder} of {item.key} holds no .png/.jpg/.jpeg file"
                raise DataError(msg)
            return files
        for candidate in dict.fromkeys([path, benchmark.resolve(f"{base}/{item.mask_path.replace('.jpg', '.png')}")]):
            if candidate.is_file():
                return [candidate]
            tried.append(str(candidate))
    msg = f"the ground-truth mask of {item.key} is missing: tried {', '.join(tried)}; run `mmad validate`"
    raise DataError(msg)


def read_mask(files: list[Path]) -> np.ndarray:
    """The grey levels of a mask, several files combined by their pixel-wise maximum."""
    layers = []
    for file in files:
        try:
            with Image.open(file) as opened:
                layers.append(np.asarray(opened.convert("L")))
        except (OSError, ValueError) as exc:
            msg = f"cannot read the mask {file}: {exc}"
            raise DataError(msg) from exc
    if len({layer.shape for layer in layers}) > 1:
        msg = f"the masks {', '.join(map(str, files))} differ in size"
        raise DataError(msg)
    union: np.ndarray = np.max(np.stack(layers), axis=0)
    return union


def agent_problem(expert: str, notation: str, shots: int) -> str | None:
    """Why an agent strategy cannot run with these settings, or None (checked before anything runs)."""
    if expert == "gt" and notation == "heatmap":
        return "agent:gt:heatmap does not exist (SoftPatch/call.py's call_ground_truth has none); use agent:gt:mask"
    if expert != "gt" and shots < 1:
        return (
            "agent:expert fits the expert on the query's templates, as internvl_query.py does: "
            "it needs --shots 1 or more"
        )
    return None


def check_agent(expert: str, notation: str, shots: int) -> None:
    """ConfigError when `agent_problem` finds one."""
    problem = agent_problem(expert, notation, shots)
    if problem is not None:
        raise ConfigError(problem)


class AgentRenderer:
    """Makes the extra image of each query: the expert's map or the ground-truth mask, drawn."""

    def __init__(self, expert: str, notation: str, folder: Path, shots: int = 1, similar: bool = False) -> None:
        check_agent(expert, notation, shots)
        self.expert = expert
        self.notation = notation
        self.folder = Path(folder)
        self.shots = shots
        self.similar = similar
        self._detector: object | None = None
        self._lock = threading.Lock()

    def templates_for(self, item: ImageItem) -> list[str]:
        """The templates the expert is fitted on: the run's kind (random or similar), the run's number."""
        return item.templates(self.shots, similar=self.similar)

    def _expert_map(self, benchmark: Benchmark, item: ImageItem, image: Image.Image) -> np.ndarray:
        from mmad.expert.patchcore import PatchCoreExpert

        templates = self.templates_for(item)
        if not templates:
            kind = "similar_templates" if self.similar else "random_templates"
            msg = f"{item.key} has no {kind}: the expert agent is fitted on them"
            raise DataError(msg)
        normals = [open_rgb(benchmark.resolve(t), "template") for t in templates]
        with self._lock:
            if self._detector is None:
                self._detector = PatchCoreExpert()
        detector = self._detector
        assert isinstance(detector, PatchCoreExpert)
        keys: list[str | None] = [str(benchmark.resolve(t)) for t in templates]
        result: np.ndarray = detector.predict(image, normals, keys=keys).anomaly_map
        return result

    def draw(self, benchmark: Benchmark, item: ImageItem) -> Image.Image:
        """The extra image of an item."""
        image = open_rgb(benchmark.resolve(item.key), "image")
        if self.expert == "gt":
            files = mask_files(benchmark, item)
            if files is None:  # a normal image: the plain image, at its own size, as upstream
                return image
            return render_oracle(image, read_mask(files), self.notation)
        return render_expert(image, self._expert_map(benchmark, item, image), self.notation)

    def path_for(self, item: ImageItem) -> Path:
        """Where an item's extra image is drawn: named by the strategy, the templates' kind and number,
        and the image (a pure function: a prompt names the file before the solver draws it)."""
        kind = "similar" if self.similar else "random"
        name = hashlib.sha1(f"{self.expert}|{self.notation}|{kind}{self.shots}|{item.key}".encode()).hexdigest()[:16]
        return self.folder / f"{name}.png"

    def part_for(self, item: ImageItem) -> tuple[ImagePart, str]:
        """The extra image part (the PNG `draw_file` writes) and its text (the official InternVL
        wording), without drawing anything: the prompt builder's share."""
        return ImagePart(path=str(self.path_for(item)), role="expert"), AGENT_TEXTS[self.notation]

    def draw_file(self, benchmark: Benchmark, item: ImageItem) -> Path:
        """Draw an item's extra image to its file (`path_for`); the agent-render solver's share."""
        path = self.path_for(item)
        drawn = self.draw(benchmark, item)
        path.parent.mkdir(parents=True, exist_ok=True)
        drawn.save(path)
        return path

    def render(self, benchmark: Benchmark, item: ImageItem) -> tuple[ImagePart, str]:
        """The extra image part and its text, the file drawn (`draw_file` then `part_for`)."""
        self.draw_file(benchmark, item)
        return self.part_for(item)
