"""Build, at test time, the files the MMAD Hub repository publishes, in their real shapes.

- One zip per dataset, made "on a Mac": ``<dataset>/...`` plus ``__MACOSX/<dataset>/.../._<name>``
  AppleDouble sidecars, ``.DS_Store`` files and folder entries.
- ``ALL_DATA.zip``: everything under an ``ALL_DATA/`` wrapper, json files included, with sidecars.
- ``metadata.csv``: the viewer export (one row per question; only the first similar template; the
  mask path prefixed with the first three key components, as the upstream generator does).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.mmad_tree import make_mmad_tree

DATASETS = ("DS-MVTec", "GoodsAD", "MVTec-AD", "MVTec-LOCO", "VisA")
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 64
DS_STORE = b"\x00\x00\x00\x01Bud1" + b"\x00" * 32
DOMAIN_KNOWLEDGE = {"VisA": {"candle": {"good": " <Normal>\n Description: wax.", "bad": " <Defect>\n Description: x."}}}


def mac_zip(files: dict[str, bytes]) -> bytes:
    """A zip as macOS's Archive Utility makes it: folder entries, ._ sidecars under __MACOSX/, .DS_Store files."""
    buffer = io.BytesIO()
    folders: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in files:
            parts = name.split("/")
            folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        for folder in sorted(folders):
            bundle.writestr(f"{folder}/", b"")
            bundle.writestr(f"{folder}/.DS_Store", DS_STORE)
        for name, data in files.items():
            bundle.writestr(name, data)
            parent, _, base = name.rpartition("/")
            bundle.writestr(f"__MACOSX/{parent + '/' if parent else ''}._{base}", APPLEDOUBLE)
    return buffer.getvalue()


def metadata_csv(mmad: dict) -> bytes:
    """The Hub's viewer export of an mmad.json, in the documented column layout."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=["query_image", "question", "options", "answer", "template_image", "mask"]
    )
    writer.writeheader()
    for key, record in mmad.items():
        mask = record.get("mask_path", "")
        if mask:
            mask = "/".join(key.split("/")[:3]) + "/" + mask
        template = (record.get("similar_templates") or [""])[0]
        for qa in record["conversation"]:
            options = "\n".join(f"{letter}: {text}" for letter, text in qa["Options"].items())
            writer.writerow(
                {
                    "query_image": key,
                    "question": qa["Question"],
                    "options": options,
                    "answer": qa["Answer"],
                    "template_image": template,
                    "mask": mask,
                }
            )
    return buffer.getvalue().encode()


@dataclass
class Release:
    """The published files, built from a generated MMAD tree."""

    tree: Path
    mmad_json: bytes
    domain_knowledge: bytes
    zips: dict[str, bytes] = field(default_factory=dict)
    all_data: bytes = b""
    metadata: bytes = b""

    def per_dataset_repo(self, *, with_json: bool = True) -> dict[str, bytes]:
        """The repository as at the pinned commit: json files, metadata.csv, README and one zip per dataset."""
        files = {f"{d}.zip": self.zips[d] for d in DATASETS}
        files["README.md"] = b"# MMAD\n"
        files["metadata.csv"] = self.metadata
        if with_json:
            files["mmad.json"] = self.mmad_json
            files["domain_knowledge.json"] = self.domain_knowledge
        return files

    def all_data_repo(self) -> dict[str, bytes]:
        """The repository as at refs/pr/1: ALL_DATA.zip (json inside) and a README."""
        return {"ALL_DATA.zip": self.all_data, "README.md": b"# MMAD\n"}


def build_release(root: Path) -> Release:
    """Generate an MMAD tree under root/tree and package it the ways the Hub does."""
    tree = root / "tree"
    mmad_path = make_mmad_tree(tree)
    mmad_bytes = mmad_path.read_bytes()
    release = Release(
        tree=tree,
        mmad_json=mmad_bytes,
        domain_knowledge=json.dumps(DOMAIN_KNOWLEDGE, indent=2).encode(),
        metadata=metadata_csv(json.loads(mmad_bytes)),
    )
    everything: dict[str, bytes] = {}
    for dataset in DATASETS:
        files = {
            p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted((tree / dataset).rglob("*")) if p.is_file()
        }
        release.zips[dataset] = mac_zip(files)
        everything.update({f"ALL_DATA/{name}": data for name, data in files.items()})
    everything["ALL_DATA/mmad.json"] = mmad_bytes
    everything["ALL_DATA/domain_knowledge.json"] = release.domain_knowledge
    release.all_data = mac_zip(everything)
    return release
