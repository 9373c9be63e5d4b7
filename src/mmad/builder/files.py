"""Finding images, folders and masks in datasets as people actually store them.

Folder names are matched without regard to case ("Train", "GOOD", "Ground_Truth"), hidden files
and archive debris (``.DS_Store``, ``._000.png``, ``__MACOSX``) are ignored, image suffixes are
matched without regard to case (``.JPG``), and a mask may carry any image suffix and a suffix
such as ``_mask`` after the image's stem, or be a folder of instance masks named by the stem
(MVTec LOCO).
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# What follows an image's stem in its mask's name, most specific first ("" is the same stem).
MASK_SUFFIXES = ("_mask", "-mask", " mask", ".mask", "_gt", "-gt", "_label", "_seg", "")
NORMAL_NAMES = ("good", "normal", "ok", "defect_free", "no_defect", "nodefect")
MASK_ROOT_NAMES = ("ground_truth", "groundtruth", "ground-truth", "gt", "masks", "mask")
DEBRIS = frozenset({"__macosx", "thumbs.db", "desktop.ini", "@eadir"})


def visible(path: Path) -> bool:
    """Whether an entry is real content: not hidden, not an archive tool's debris."""
    return not path.name.startswith(".") and path.name.lower() not in DEBRIS


def norm(name: str) -> str:
    """A folder name for comparison: lower case, '-' and ' ' read as '_'."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def is_image(path: Path) -> bool:
    """A visible file with an image suffix (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and visible(path) and path.is_file()


def subdirs(folder: Path) -> list[Path]:
    """The visible sub-folders, by name."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and visible(p)), key=lambda p: p.name)


def child(folder: Path | None, *names: str) -> Path | None:
    """The sub-folder whose name matches one of names (case and '-'/'_' ignored), trying names in order."""
    if folder is None or not folder.is_dir():
        return None
    found = {norm(p.name): p for p in reversed(subdirs(folder))}  # reversed: the first by name wins a tie
    for name in names:
        if norm(name) in found:
            return found[norm(name)]
    return None


def child_file(folder: Path, name: str) -> Path | None:
    """The file named name in folder, matched without regard to case."""
    if not folder.is_dir():
        return None
    exact = folder / name
    if exact.is_file():
        return exact
    wanted = name.lower()
    return next((p for p in sorted(folder.iterdir()) if p.name.lower() == wanted and p.is_file()), None)


def is_normal_name(name: str) -> bool:
    """Whether a folder name means defect-free images."""
    return norm(name) in NORMAL_NAMES


def _mask_stem(stem: str) -> str | None:
    """The image stem a mask-like name refers to ('000_mask' -> '000'), or None."""
    lowered = stem.lower()
    for suffix in MASK_SUFFIXES[:-1]:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            return stem[: -len(suffix)]
    return None


def images(folder: Path) -> list[Path]:
    """The images of a folder, by name, without the masks stored beside their images ('x.png' + 'x_mask.png')."""
    if not folder.is_dir():
        return []
    found = sorted((p for p in folder.iterdir() if is_image(p)), key=lambda p: p.name)
    stems = {p.stem.lower() for p in found}
    return [p for p in found if (_mask_stem(p.stem) or "\0").lower() not in stems]


class MaskIndex:
    """The masks of one folder, looked up by an image's stem.

    Entries are files (``000.png``, ``000_mask.PNG``, ``000_mask.jpg``) and folders of instance
    masks (``000/000.png, 001.png``); the index is built once per folder.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._files: dict[str, Path] = {}
        self._dirs: dict[str, Path] = {}
        if folder is None or not folder.is_dir():
            return
        for entry in sorted(folder.iterdir(), key=lambda p: p.name, reverse=True):
            if not visible(entry):
                continue
            if entry.is_dir():
                self._dirs[entry.name.lower()] = entry
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                self._files[entry.stem.lower()] = entry

    def find(self, stem: str, *, same_stem: bool = True) -> tuple[Path, ...]:
        """The mask file(s) of the image with this stem; () when there is none.

        same_stem=False skips a file with exactly the image's stem: in the image's own folder that is the image.
        """
        lowered = stem.lower()
        suffixes = MASK_SUFFIXES if same_stem else MASK_SUFFIXES[:-1]
        for suffix in suffixes:
            hit = self._files.get(lowered + suffix)
            if hit is not None:
                return (hit,)
        for suffix in suffixes:
            folder = self._dirs.get(lowered + suffix)
            if folder is not None:
                instances = tuple(p for p in sorted(folder.iterdir(), key=lambda p: p.name) if is_image(p))
                if instances:
                    return instances
        return ()

    def expected(self, stem: str) -> str:
        """Where a mask was looked for, for error messages."""
        base = self.folder if self.folder is not None else Path("ground_truth")
        return f"{base / stem}.png or {stem}_mask.png (any image suffix), or a folder {stem}/ of masks"
