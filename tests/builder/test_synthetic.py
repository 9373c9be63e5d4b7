"""The synthetic dataset gives away nothing but the defect: same camera for every image, small defects, variation."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from mmad.builder import make_synthetic_dataset
from mmad.builder.synthetic import SyntheticDataset


def _auroc(negatives: list[float], positives: list[float]) -> float:
    neg, pos = np.asarray(negatives), np.asarray(positives)
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), seed=4, n_train=6, n_test_good=6, n_per_defect=4)


def _normals(data: SyntheticDataset, category: str) -> list[Path]:
    return sorted((data.root / category).glob("*/good/*.png"))


def _defects(data: SyntheticDataset) -> list[tuple[Path, np.ndarray]]:
    pairs = []
    for image in sorted(data.root.glob("*/test/*/*.png")):
        if image.parent.name == "good":
            continue
        mask_file = image.parents[2] / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
        pairs.append((image, np.asarray(Image.open(mask_file)) > 0))
    return pairs


def test_normal_and_defective_images_are_equally_sharp(synthetic: SyntheticDataset) -> None:
    normal = [
        float(np.log(ndimage.laplace(_grey(p)).var())) for c in synthetic.categories for p in _normals(synthetic, c)
    ]
    whole, away = [], []
    for image, mask in _defects(synthetic):
        laplacian = ndimage.laplace(_grey(image))
        whole.append(float(np.log(laplacian.var())))
        away.append(float(np.log(laplacian[~ndimage.binary_dilation(mask, iterations=6)].var())))
    # Sharpness alone must not tell defective images from normal ones (0.5 = no better than chance). The
    # generator before 0.2 blurred only defective images: 0.26 away from the defect.
    assert 0.35 <= _auroc(normal, away) <= 0.65
    assert 0.35 <= _auroc(normal, whole) <= 0.7  # the defect's own edges may add a little
    assert abs(np.median(normal) - np.median(away)) < 0.25  # log-variance: within about 25%


def test_a_share_of_defects_is_small(synthetic: SyntheticDataset) -> None:
    areas = np.array([mask.mean() for _, mask in _defects(synthetic)])
    assert ((areas >= 0.001) & (areas <= 0.007)).mean() >= 0.25
    assert (areas >= 0.01).mean() >= 0.25
    assert areas.min() > 0


def test_normal_images_vary_in_position_and_light(synthetic: SyntheticDataset) -> None:
    centres, brightness = [], []
    for path in _normals(synthetic, "washer"):
        grey = _grey(path)
        centres.append(ndimage.center_of_mass(grey > 110))
        brightness.append(float(grey[grey > 110].mean()))
    assert np.std(np.array(centres), axis=0).min() > 3  # pixels, on a 256-px image
    assert np.std(brightness) > 4  # grey levels of the metal
    textures = [_grey(p).mean() for p in _normals(synthetic, "gravel")]
    assert np.std(textures) > 3
