"""The visual expert as an mmad model: it answers what it can see and abstains on the rest.

- Anomaly Discrimination: "Yes" when the image score exceeds the category's threshold.
  Calibration (at ``prepare``): each category's normal images are the templates its items name
  (up to ``max_normals``, in key order). The expert scores each normal image against the bank it
  would use on a query (one other normal image for ``expert``, all the others for
  ``expert:category``). The pixelwise maximum of those maps, smoothed, is the category's
  envelope: its normal level at each position. A query's score is its map divided by it (so a
  border or a shiny part that is always noisy does not hide a small defect elsewhere) and the
  threshold is MARGINS[mode] × the highest such normal score, each normal image held out of the
  envelope it is divided by. Without a benchmark (over HTTP), ``expert``
  calibrates the same way on a request's own templates when it has two or more, otherwise it
  compares the undivided score with the median undivided threshold of the known categories;
  ``expert:category`` refuses (it has nothing to fit on).
- Defect Localization: the option whose region holds the most anomaly-map mass per cell, on a
  3×3 grid over the image (the outer ring for "around the edges"), read from the undivided map
  (the envelope is a threshold for the score, not a map of where defects are).
- Every other subtask: abstention, recorded as such, without looking at the image. An image's AD
  and DL questions, asked one per request, share one inspection.
- ``--perturb``: the query image it scores is the file's pixels perturbed as the image encoder
  perturbs them for an API model (`mmad.protocol.perturb`, the same per-image seed); templates and
  normal images stay clean. Over HTTP (``mmad serve -m expert``) the query arrives perturbed already.

A category's calibration is a function of the detector's settings, the mode and its normal
images' contents; fits are kept per process under that key (`fitted_expert`), so a category is
fitted once however many runs, models or tests ask for it.

A query's category comes from its benchmark key (its path relative to the data root, as
written, never through a link: ``mmad build`` links images to files outside the root by
default). ``describe()`` carries, after ``prepare``, a fingerprint of the fitted state (detector
settings, each category's normal images by key and content, and its calibration), so a response
cache keyed on it never reuses answers of a different fit.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path, PurePath
from statistics import median
from typing import Any

import numpy as np
from PIL import Image

from mmad.data.schema import RAW_TYPE_TO_SUBTASK, Benchmark, Subtask
from mmad.errors import ConfigError, DataError
from mmad.expert.patchcore import (
    IMAGE_SIZE,
    Calibration,
    DetectorSettings,
    ExpertResult,
    PatchCoreExpert,
    calibrate,
)
from mmad.models.base import Completion, Model, Request
from mmad.protocol.encoding import decode_data_url
from mmad.protocol.images import load_image
from mmad.protocol.messages import ImagePart
from mmad.protocol.perturb import Perturbation

logger = logging.getLogger(__name__)
# Threshold = margin × the highest normal score (divided by the envelope) of the category; chosen on
# bench/bench_expert_small_defects.py. Templates mode sees many pairs, so their maximum already sits high.
MARGINS = {"templates": 1.0, "category": 1.1}
PLAIN_MARGIN = 1.3  # for undivided scores, when a query comes without a category
DEFAULT_THRESHOLD = 20.0
MAX_NORMALS = 7
MAX_PAIRS = 30  # normal-vs-normal maps per category in templates mode
RESULTS_KEPT = 32  # inspections kept for the other questions about the same image
FITS_KEPT = 256  # category calibrations kept per process (an envelope is 0.4 MB at 320 px)

_fits: dict[str, Calibration] = {}
_fits_lock = threading.Lock()
_experts: dict[tuple[str, DetectorSettings], PatchCoreExpert] = {}

REGION_WORDS = {
    "top left": [(0, 0)],
    "upper left": [(0, 0)],
    "top right": [(0, 2)],
    "upper right": [(0, 2)],
    "bottom left": [(2, 0)],
    "lower left": [(2, 0)],
    "bottom right": [(2, 2)],
    "lower right": [(2, 2)],
    "top": [(0, 0), (0, 1), (0, 2)],
    "upper": [(0, 0), (0, 1), (0, 2)],
    "bottom": [(2, 0), (2, 1), (2, 2)],
    "lower": [(2, 0), (2, 1), (2, 2)],
    "left": [(0, 0), (1, 0), (2, 0)],
    "right": [(0, 2), (1, 2), (2, 2)],
    "center": [(1, 1)],
    "centre": [(1, 1)],
    "middle": [(1, 1)],
    "edge": [(i, j) for i in range(3) for j in range(3) if (i, j) != (1, 1)],
}


def option_cells(text: str) -> set[tuple[int, int]]:
    """The grid cells an option's words name (longest phrases first, so 'top left' is not 'top' + 'left')."""
    lowered = text.lower()
    cells: set[tuple[int, int]] = set()
    for phrase in sorted(REGION_WORDS, key=len, reverse=True):
        if re.search(rf"\b{phrase}s?\b", lowered):
            cells.update(REGION_WORDS[phrase])
            lowered = re.sub(rf"\b{phrase}s?\b", " ", lowered)
    return cells


def locate_option(anomaly_map: np.ndarray, options: dict[str, str]) -> str | None:
    """The option whose region holds the most anomaly mass per cell."""
    height, width = anomaly_map.shape
    peak = anomaly_map.max()
    weights = np.clip(anomaly_map - 0.5 * peak, 0, None) if peak > 0 else anomaly_map
    rows = np.array_split(np.arange(height), 3)
    cols = np.array_split(np.arange(width), 3)
    mass = np.array([[weights[r[0] : r[-1] + 1, c[0] : c[-1] + 1].sum() for c in cols] for r in rows])
    mass = mass / (mass.sum() or 1.0)
    best, best_score = None, -1.0
    for letter, text in options.items():
        cells = option_cells(text)
        if not cells:
            continue
        score = sum(mass[c] for c in cells) / len(cells)
        if score > best_score:
            best, best_score = letter, score
    return best


def category_of_key(key: str) -> str | None:
    """``dataset/category`` of a benchmark key (``dataset/category/.../file``), None for a shorter path."""
    parts = key.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else None


def key_under_root(path: str, root: Path) -> str | None:
    """A path's key relative to root, read from the path as written: links are not followed, since
    a linked build's files point outside the root. None when the path is not under root."""
    # os.path.abspath, not Path.resolve: it normalises the text and leaves links alone.
    absolute = os.path.abspath(path)  # noqa: PTH100
    for base in dict.fromkeys((os.path.abspath(root), os.path.realpath(root))):  # noqa: PTH100
        relative = PurePath(os.path.relpath(absolute, base))
        if relative.parts and relative.parts[0] not in {os.curdir, os.pardir}:
            return relative.as_posix()
    return None


def _file_key(path: Path) -> str:
    """A feature-cache key that changes when the file does."""
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


@dataclass(frozen=True)
class FittedCategory:
    """What the expert fitted for one category."""

    normals: tuple[str, ...]  # benchmark keys
    digests: tuple[str, ...]  # sha256 of each normal image's file
    calibration: Calibration | None  # None: too few normal images to calibrate (templates mode only)


class ExpertModel(Model):
    """PatchCore as an mmad backend."""

    def __init__(
        self,
        expert: PatchCoreExpert | None = None,
        *,
        fit_on: str = "templates",
        max_normals: int = MAX_NORMALS,
    ) -> None:
        if fit_on not in {"templates", "category"}:
            msg = f"the expert fits on 'templates' (each query's) or 'category' (its normal images), not {fit_on!r}"
            raise ConfigError(msg)
        if max_normals < 2:
            msg = f"max_normals must be at least 2 (one normal image to fit on, one to calibrate), not {max_normals}"
            raise ConfigError(msg)
        self.name = "expert:category" if fit_on == "category" else "expert"
        self.endpoint = "local-expert"
        self.expert = expert or PatchCoreExpert()
        self.fit_on = fit_on
        self.max_normals = max_normals
        self.fitted: dict[str, FittedCategory] = {}
        self.root: Path | None = None
        self._keys: dict[str, str] = {}
        self._benchmark: Benchmark | None = None
        self._by_content: dict[str, str] | None = None  # sha256 of a benchmark file's bytes -> its key
        self._content_lock = threading.Lock()
        self._request_calibrations: dict[tuple[str, ...], Calibration] = {}
        self._fingerprint: str | None = None
        self._results: OrderedDict[tuple[str, ...], Future[tuple[ExpertResult, float]]] = OrderedDict()
        self._results_lock = threading.Lock()
        self.fits_made = 0  # categories this model calibrated itself rather than found fitted

    @classmethod
    def from_name(
        cls, model_id: str = "", device: str | None = None, options: dict[str, Any] | None = None
    ) -> ExpertModel:
        """``expert`` (fit on each query's templates, as the paper's agent) or ``expert:category``
        (fit on the category's normal images, gathered from the benchmark's templates).

        Options (``--model-args``): ``image_size`` (the detector's input side, a multiple of 16;
        larger finds smaller defects and costs more) and ``max_normals`` (normal images per category).
        """
        if model_id not in {"", "templates", "category"}:
            msg = f"unknown expert mode {model_id!r}: use expert (fit on each query's templates) or expert:category"
            raise ConfigError(msg)
        options = dict(options or {})
        settings = expert_settings(options)
        return cls(
            PatchCoreExpert(device=device, settings=settings),
            fit_on="category" if model_id == "category" else "templates",
            max_normals=int(options.get("max_normals", MAX_NORMALS)),
        )

    @property
    def thresholds(self) -> dict[str, float]:
        """The calibrated threshold of each category that has one."""
        return {c: f.calibration.threshold for c, f in self.fitted.items() if f.calibration is not None}

    def settings(self) -> dict[str, Any]:
        """The settings that shape answers before anything is fitted."""
        return {
            "detector": self.expert.settings.describe(),
            "fit_on": self.fit_on,
            "max_normals": self.max_normals,
            # Part of the response cache's key: a change to how answers are made must change this text.
            "calibration": (
                "per category: scores divided by the pixelwise max of normal-vs-normal maps (smoothed), "
                f"threshold {MARGINS[self.fit_on]} x the highest such normal score, each normal image held "
                "out of its envelope as query and bank"
            ),
            "localization": "the undivided map",
        }

    def describe(self) -> dict[str, Any]:
        """Backbone, layers and calibration; after ``prepare``, the fitted state's fingerprint and thresholds."""
        out: dict[str, Any] = {"name": self.name, **self.settings()}
        if self._fingerprint is not None:
            out["fitted"] = {
                "fingerprint": self._fingerprint,
                "thresholds": {c: round(t, 4) for c, t in sorted(self.thresholds.items())},
            }
        return out

    def prepare(self, benchmark: Benchmark, *, on_category: Callable[[str, int, int], None] | None = None) -> None:
        """Gather each category's normal images and calibrate its threshold (fitting, in category mode).

        A category fitted before in this process, on the same settings and normal images, is
        reused. ``on_category(category, done, total)`` is called after each category.
        """
        self.root = benchmark.root
        self._benchmark, self._by_content = benchmark, None
        self._keys = {}
        self._request_calibrations = {}
        with self._results_lock:
            self._results.clear()
        pools: dict[str, set[str]] = {}
        for item in benchmark.items:
            category = category_of_key(item.key)
            if category is None:
                continue
            self._keys[str(benchmark.resolve(item.key))] = item.key
            pools.setdefault(category, set()).update(item.random_templates + item.similar_templates)
        fitted: dict[str, FittedCategory] = {}
        for done, (category, pool) in enumerate(sorted(pools.items()), start=1):
            normals = tuple(sorted(pool)[: self.max_normals])
            if len(normals) < 2:
                if self.fit_on == "category":
                    msg = (
                        f"expert:category cannot fit on {category}: the benchmark's templates name "
                        f"{len(normals)} normal image(s) of it ({', '.join(normals) or 'none'}) in {benchmark.root}; "
                        "it needs at least 2 (one to fit on, one to calibrate). Give the category's items "
                        "templates (rebuild with `mmad build`), or use `expert`, which fits on each query's templates"
                    )
                    raise DataError(msg)
                logger.warning("expert: %s has %d normal template(s); no threshold calibrated", category, len(normals))
            paths = [self._normal_path(benchmark, category, key) for key in normals]
            digests = tuple(hashlib.sha256(path.read_bytes()).hexdigest() for path in paths)
            calibration = self._fit(paths, digests) if len(paths) >= 2 else None
            fitted[category] = FittedCategory(normals, digests, calibration)
            if on_category is not None:
                on_category(category, done, len(pools))
        self.fitted = fitted
        self._fingerprint = self._fingerprint_of(fitted)
        logger.info("expert thresholds: %s", {k: round(v, 2) for k, v in self.thresholds.items()})

    def _normal_path(self, benchmark: Benchmark, category: str, key: str) -> Path:
        path = benchmark.resolve(key)
        if not path.is_file():
            msg = (
                f"normal image {key} of {category} (a template in {benchmark.source or benchmark.root}) is missing "
                f"at {path}; rebuild the benchmark or restore the file (a link whose source moved reads as missing)"
            )
            raise DataError(msg)
        return path

    def _fingerprint_of(self, fitted: dict[str, FittedCategory]) -> str:
        # What the fit is a function of: the settings and each category's normal images (by key and
        # content). The fitted floats themselves are left out: their last bits change with the
        # number of threads, which would make the same fit look different on another machine.
        state = {
            "settings": self.settings(),
            "categories": {
                c: {"normals": list(f.normals), "digests": list(f.digests), "fitted": f.calibration is not None}
                for c, f in sorted(fitted.items())
            },
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]

    def _fit(self, paths: list[Path], digests: tuple[str, ...]) -> Calibration:
        """A category's calibration, from the process's fits when the same one was made before."""
        recipe = {
            "detector": self.expert.settings.describe(),
            "pooled": self.fit_on == "category",
            "margin": MARGINS[self.fit_on],
            "plain_margin": PLAIN_MARGIN,
            "max_pairs": MAX_PAIRS,
            "normals": list(digests),
        }
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        with _fits_lock:
            known = _fits.get(key)
        if known is not None:
            return known
        calibration = self._calibrate_files(paths)
        self.fits_made += 1
        with _fits_lock:
            while len(_fits) >= FITS_KEPT:  # oldest first: a long sweep over many benchmarks stays bounded
                _fits.pop(next(iter(_fits)))
            return _fits.setdefault(key, calibration)

    def _calibrate_files(self, paths: list[Path]) -> Calibration:
        keys = [_file_key(p) for p in paths]
        return self._calibrate([self.expert.image_features(k, _loader(p)) for k, p in zip(keys, paths, strict=True)])

    def _calibrate(self, grids: list[Any]) -> Calibration:
        """Against the bank the expert would use on a query: one other normal image (templates mode)
        or all the other ones (category mode)."""
        return calibrate(
            self.expert,
            grids,
            pooled=self.fit_on == "category",
            margin=MARGINS[self.fit_on],
            plain_margin=PLAIN_MARGIN,
            max_pairs=MAX_PAIRS,
        )

    def key_of(self, path: str | None) -> str | None:
        """The benchmark key of an image path, or None when it is not under the prepared benchmark's root."""
        if path is None or self.root is None:
            return None
        return self._keys.get(path) or key_under_root(path, self.root)

    def key_of_content(self, part: ImagePart) -> str | None:
        """The benchmark key of an image sent inline (over HTTP: no path, so no key to read) whose bytes are one
        of the prepared benchmark's files, as `--original-images` sends them: without it the query had no category,
        so no calibrated threshold, and the served expert answered otherwise than the in-process one. A re-encoded
        image (the default JPEG/PNG at 512 px) matches no file and is scored as before."""
        if part.path is not None or part.data_url is None or self._benchmark is None:
            return None
        try:
            digest = hashlib.sha256(decode_data_url(part.data_url)).hexdigest()
        except (ValueError, DataError):
            return None
        return self._content_index().get(digest)

    def _content_index(self) -> dict[str, str]:
        """The benchmark's query files by the SHA-256 of their bytes, read once, on the first inline image."""
        with self._content_lock:
            if self._by_content is None:
                assert self._benchmark is not None
                benchmark, index = self._benchmark, dict[str, str]()
                logger.info("expert: indexing %d query images by content", len(benchmark.items))
                for item in benchmark.items:
                    path = benchmark.resolve(item.key)
                    if path.is_file():
                        index.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), item.key)
                self._by_content = index
            return self._by_content

    def calibration_for(self, category: str | None, templates: list[ImagePart]) -> Calibration | None:
        """The category's calibration, or one made on the request's own templates (two or more)."""
        fitted = self.fitted.get(category or "")
        if fitted is not None and fitted.calibration is not None:
            return fitted.calibration
        if len(templates) < 2:
            return None
        # Calibrating costs several fits; requests that share their templates share the result.
        keyed = [(self._image_key(t), t) for t in templates]
        key = tuple(k for k, _ in keyed)
        if key not in self._request_calibrations:
            grids = [self.expert.image_features(k, _part_loader(t)) for k, t in keyed]
            self._request_calibrations[key] = self._calibrate(grids)
        return self._request_calibrations[key]

    def plain_threshold(self) -> float:
        """For a query with no calibration at all: the median undivided threshold of the categories."""
        known = [f.calibration.plain_threshold for f in self.fitted.values() if f.calibration is not None]
        return median(known) if known else DEFAULT_THRESHOLD

    def _image_key(self, part: ImagePart) -> str:
        if part.path is not None:
            return _file_key(Path(part.path))
        return hashlib.sha1((part.data_url or "").encode()).hexdigest()

    def inspect(
        self, query: ImagePart, templates: list[ImagePart], perturb: Perturbation | None = None
    ) -> tuple[ExpertResult, float]:
        """The expert's result for a query (perturbed by `perturb` first, when given) and its threshold."""
        key = self.key_of(query.path) or self.key_of_content(query)
        category = category_of_key(key) if key else None
        if self.fit_on == "category":
            fitted = self.fitted.get(category or "")
            if fitted is None:
                msg = self._unfitted_message(query, key, category)
                raise DataError(msg)
            assert self.root is not None
            paths = [self.root / k for k in fitted.normals]
            normals = [_loader(p) for p in paths]
            keys: list[str | None] = [_file_key(p) for p in paths]
        else:
            normals = [_part_loader(t) for t in templates]
            keys = [self._image_key(t) for t in templates]
        calibration = self.calibration_for(category, templates)
        envelope = calibration.envelope if calibration else None
        result = self.expert.predict(query_pixels(query, perturb), normals, keys=keys, envelope=envelope)
        return result, calibration.threshold if calibration else self.plain_threshold()

    def _unfitted_message(self, query: ImagePart, key: str | None, category: str | None) -> str:
        where = query.path or "an image sent inline (no path)"
        if self.root is None:
            return (
                f"expert:category has not been fitted: it needs a benchmark to fit on (run it with `mmad eval -d DIR`, "
                f"or serve it with `--data DIR`); asked about {where}"
            )
        if key is None:
            return (
                f"expert:category cannot tell the category of {where}: it is not under the benchmark root {self.root}, "
                "so there are no normal images to fit on; send images by their path under the root, or use `expert`"
            )
        known = ", ".join(sorted(self.fitted)) or "none"
        return f"expert:category has no normal images of {category or key} (fitted: {known}); asked about {where}"

    def inspect_shared(
        self, query: ImagePart, templates: list[ImagePart], perturb: Perturbation | None = None
    ) -> tuple[ExpertResult, float]:
        """`inspect`, once per query, perturbation and templates: an image's other questions (and a
        concurrent request about it) wait for the same inspection."""
        label = perturb.label if perturb is not None and query.path is not None else ""
        key = (self._image_key(query) + "|" + label, *(self._image_key(t) for t in templates))
        with self._results_lock:
            future = self._results.get(key)
            owner = future is None
            if future is None:
                future = self._results[key] = Future()
                while len(self._results) > RESULTS_KEPT:
                    self._results.popitem(last=False)
            else:
                self._results.move_to_end(key)
        if owner:
            try:
                future.set_result(self.inspect(query, templates, perturb))
            except BaseException as exc:
                future.set_exception(exc)
                with self._results_lock:
                    self._results.pop(key, None)
        return future.result()

    async def generate(self, request: Request) -> Completion:
        """Answer Anomaly Discrimination and Defect Localization; abstain on the rest."""
        # The structured questions and the images' roles, never the prompt's wording: a protocol
        # variant, a translation or a rephrased stem asks the expert the same questions.
        queries, templates = request.query_images, list(request.template_images)
        asked = [(_kind_of(q.question_type), q.options) for q in request.questions]
        if not queries or not templates or not asked:
            return Completion(text="", abstained=True, extra={"abstain_reason": "needs a template and a query"})
        if all(kind is None for kind, _options in asked):
            return Completion(text="", abstained=True, extra={"abstain_reason": "asks nothing the expert sees"})
        perturb = request_perturbation(request)
        result, threshold = await asyncio.to_thread(self.inspect_shared, queries[-1], templates, perturb)
        letters: list[str | None] = []
        for kind, options in asked:
            if kind is Subtask.ANOMALY_DISCRIMINATION:
                wanted = "yes" if result.pred_score > threshold else "no"
                letters.append(next((k for k, v in options.items() if v.lower().startswith(wanted)), None))
            elif kind is Subtask.DEFECT_LOCALIZATION:
                letters.append(locate_option(result.anomaly_map, options))
            else:
                letters.append(None)
        scores = {"pred_score": result.pred_score, "threshold": threshold}
        if all(letter is None for letter in letters):
            return Completion(text="", abstained=True, scores=scores)
        if len(letters) == 1:
            text = f"Answer: {letters[0]}"
        else:
            text = "\n".join(f"{i}. Answer: {letter or '-'}." for i, letter in enumerate(letters, start=1))
        declined = [i for i, letter in enumerate(letters) if letter is None]
        # A detector reads no tokens: its records carry none (0 would read as a measured free answer).
        return Completion(text=text, abstained_items=declined, scores=scores)


def expert_settings(options: dict[str, Any]) -> DetectorSettings:
    """The detector settings of the expert's --model-args; ConfigError names a wrong one (the dry run
    checks them with this, building nothing)."""
    unknown = sorted(set(options) - {"image_size", "max_normals"})
    if unknown:
        msg = f"the expert takes the model arguments image_size and max_normals, not {', '.join(unknown)}"
        raise ConfigError(msg)
    return DetectorSettings(image_size=int(options.get("image_size", IMAGE_SIZE)))


def request_perturbation(request: Request) -> Perturbation | None:
    """The run's --perturb, as its image encoder holds it (None: none, or a request with no encoder)."""
    return request.images.perturbation if request.images is not None else None


def query_pixels(query: ImagePart, perturb: Perturbation | None = None) -> Image.Image:
    """The query's pixels as the expert scores them: a file's perturbed by `perturb` exactly as the image
    encoder perturbs a query it sends (the file's own pixels, the noise seeded by its bytes); an image
    sent inline (over HTTP) as it came, since its sender perturbed it already."""
    if perturb is None or query.path is None:
        return load_image(query)
    raw = Path(query.path).read_bytes()
    with Image.open(io.BytesIO(raw)) as image:
        return perturb.apply(image, raw)


def _kind_of(question_type: str) -> Subtask | None:
    """The subtask of a question the expert answers (Anomaly Discrimination, Defect Localization), else None."""
    subtask = RAW_TYPE_TO_SUBTASK.get(question_type)
    return subtask if subtask in {Subtask.ANOMALY_DISCRIMINATION, Subtask.DEFECT_LOCALIZATION} else None


def fitted_expert(
    benchmark: Benchmark | str | Path,
    *,
    fit_on: str = "templates",
    image_size: int | None = None,
    device: str | None = None,
) -> ExpertModel:
    """An expert prepared on a benchmark (an mmad.json, its folder or a loaded one), ready to answer.

    Its detector (weights and feature cache) is shared with every other expert of the same settings
    made here, and each category's fit is made once per process: a second call on the same
    benchmark costs no calibration. Meant for test fixtures and scripts that ask one fitted expert
    many times.
    """
    if not isinstance(benchmark, Benchmark):
        from mmad.data.official import load_benchmark

        path = Path(benchmark)
        benchmark = load_benchmark(path / "mmad.json" if path.is_dir() else path)
    settings = DetectorSettings(image_size=image_size or IMAGE_SIZE)
    where = device or "cpu"
    with _fits_lock:
        expert = _experts.get((where, settings))
        if expert is None:
            expert = _experts[where, settings] = PatchCoreExpert(device=where, settings=settings)
    model = ExpertModel(expert, fit_on=fit_on)
    model.prepare(benchmark)
    return model


def _loader(path: Path) -> Any:
    def load() -> Image.Image:
        with Image.open(path) as image:
            return image.convert("RGB")

    return load


def _part_loader(part: ImagePart) -> Any:
    return lambda: load_image(part)
