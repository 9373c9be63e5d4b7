"""Where MMAD's files come from: the Hugging Face Hub, a local folder, or the GitHub repository's files.

The Hub source speaks the real client's protocol through ``huggingface_hub``: the revision is
resolved to a commit (``HfApi.dataset_info``), the files are listed at that commit
(``HfApi.list_repo_tree``: sizes, LFS SHA-256s, git blob ids), and each file's metadata comes from
``get_hf_file_metadata`` (the HEAD on ``resolve/<commit>/<path>``: ETag, X-Repo-Commit, size).
The bytes themselves go through :func:`mmad.data.transfer.fetch_url`, which keeps a partial file
across runs (the client deletes it on failure).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mmad.data.known import GITHUB_BASE, GITHUB_PATHS, GITHUB_REF, GITHUB_REPO, REPO_ID, REPO_TYPE, Declared
from mmad.data.transfer import BytesProgress, fetch_url
from mmad.errors import DownloadError, MissingExtraError


@dataclass(frozen=True)
class RemoteFile:
    """One file a source offers, with what the source declares about it."""

    path: str
    size: int | None
    sha256: str | None = None  # the LFS object id, which is the SHA-256 of the content
    git_sha1: str | None = None  # the git blob id, for files not in LFS

    @property
    def declared(self) -> Declared:
        """The checksums to hold the downloaded bytes to."""
        return Declared(sha256=self.sha256, git_sha1=self.git_sha1, size=self.size)


class Source(Protocol):
    """Where dataset files come from."""

    description: str
    origin: str  # how provenance names it: "hub", "local:<folder>"

    def resolve(self) -> str:
        """The commit (or a stable label) the files come from; called first."""

    def list_files(self) -> dict[str, RemoteFile]:
        """Every file at that commit, by repository path."""

    def fetch(self, path: str, part: Path, progress: BytesProgress | None = None) -> None:
        """Complete the partial file ``part`` with the file's bytes (resuming what it holds)."""


def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a core dependency
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_unreachable(detail: str) -> DownloadError:
    """The error for a Hub that cannot be reached."""
    hint = (
        "HF_HUB_OFFLINE is set, so the Hub is not contacted: unset it to download, or pass --source DIR "
        "pointing at a folder with the dataset files"
        if _offline()
        else "check the network and proxy settings (HF_ENDPOINT for a mirror), or pass --source DIR "
        "with the files copied from elsewhere"
    )
    return DownloadError(f"cannot reach the Hugging Face Hub ({detail}); {hint}")


def _client_error(exc: Exception, what: str) -> DownloadError:
    """Turn the Hub client's exceptions into one message that says what to do."""
    name = type(exc).__name__
    if name == "RevisionNotFoundError":
        return DownloadError(
            f"{what}: the revision does not exist; pass --revision with a commit, branch or ref of the "
            f"repository (for example the default {REPO_ID} commit, or refs/pr/1 for the official README's zip)"
        )
    if name in {"RepositoryNotFoundError", "GatedRepoError"}:
        return DownloadError(f"{what}: the repository is not visible ({name}); check the name and your HF token")
    return hub_unreachable(f"{what}: {name}: {exc}")


class HuggingFaceSource:
    """A revision of the dataset repository on the Hugging Face Hub (or a Hub-compatible endpoint)."""

    def __init__(
        self,
        repo_id: str = REPO_ID,
        revision: str | None = None,
        *,
        token: str | None = None,
        endpoint: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        from mmad.data.known import DEFAULT_REVISION

        self.repo_id = repo_id
        self.revision = revision or DEFAULT_REVISION
        self.commit: str | None = None
        self._token = token
        self._endpoint = endpoint.rstrip("/") if endpoint else None
        self._retries = retries
        self._backoff = backoff
        self.description = f"hf://datasets/{repo_id}@{self.revision}"
        self.origin = "hub"

    def _api(self) -> Any:
        try:
            from huggingface_hub import HfApi
        except ImportError as exc:  # pragma: no cover - a core dependency
            feature = "mmad download"
            raise MissingExtraError(feature, "hf", "huggingface_hub") from exc
        if _offline():
            detail = "offline mode"
            raise hub_unreachable(detail)
        return HfApi(endpoint=self._endpoint, token=self._token)

    @property
    def endpoint(self) -> str:
        """The Hub's base URL."""
        if self._endpoint:
            return self._endpoint
        from huggingface_hub import constants

        return str(constants.ENDPOINT)

    def resolve(self) -> str:
        """Resolve the revision (branch, ref or commit) to the commit it names now."""
        api = self._api()
        try:
            info = api.dataset_info(self.repo_id, revision=self.revision)
        except Exception as exc:  # the client raises many transport-specific types
            raise _client_error(exc, f"{self.description}") from exc
        self.commit = str(info.sha) if info.sha else self.revision
        self.description = f"hf://datasets/{self.repo_id}@{self.revision}"
        if self.commit != self.revision:
            self.description += f" (commit {self.commit[:12]})"
        return self.commit

    def list_files(self) -> dict[str, RemoteFile]:
        """The files of the commit, with their sizes and the checksums the Hub declares."""
        api = self._api()
        commit = self.commit or self.resolve()
        try:
            entries = list(api.list_repo_tree(self.repo_id, repo_type=REPO_TYPE, revision=commit, recursive=True))
        except Exception as exc:
            raise _client_error(exc, f"listing {self.description}") from exc
        files: dict[str, RemoteFile] = {}
        for entry in entries:
            if not hasattr(entry, "size"):  # a folder
                continue
            lfs = getattr(entry, "lfs", None)
            sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
            if isinstance(lfs, dict):  # older clients keep the raw dict
                sha256 = lfs.get("sha256") or lfs.get("oid")
            blob = getattr(entry, "blob_id", None)
            files[entry.path] = RemoteFile(
                path=entry.path, size=entry.size, sha256=sha256, git_sha1=None if sha256 else blob
            )
        return files

    def fetch(self, path: str, part: Path, progress: BytesProgress | None = None) -> None:
        """Fetch one file of the commit into ``part``, resuming what it holds."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

        commit = self.commit or self.resolve()
        url = hf_hub_url(self.repo_id, path, repo_type=REPO_TYPE, revision=commit, endpoint=self._endpoint)
        if _offline():
            detail = "offline mode"
            raise hub_unreachable(detail)
        try:
            meta = get_hf_file_metadata(url, token=self._token)
        except Exception as exc:
            raise _client_error(exc, f"{path} at {self.description}") from exc
        # The client's own headers: its user agent, and the token when there is one (never sent to the CDN).
        wanted = {"authorization", "user-agent"}
        headers = {k: v for k, v in build_hf_headers(token=self._token).items() if k.lower() in wanted}
        fetch_url(
            url,
            part,
            headers=headers,
            expected_size=meta.size,
            identity=meta.etag or "",
            retries=self._retries,
            backoff=self._backoff,
            progress=progress,
        )


class LocalFolderSource:
    """A folder holding the repository's files (a mirror, a copy from another machine, a test stand-in)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            msg = f"source folder {self.root} does not exist; pass a folder holding the Hub's files"
            raise DownloadError(msg)
        self.description = str(self.root)
        self.origin = f"local:{self.root.resolve()}"

    def resolve(self) -> str:
        """A folder has no commit: its path stands in."""
        return f"local:{self.root.resolve()}"

    def list_files(self) -> dict[str, RemoteFile]:
        """Every file under the folder (no declared checksums: a folder declares nothing)."""
        return {
            p.relative_to(self.root).as_posix(): RemoteFile(p.relative_to(self.root).as_posix(), p.stat().st_size)
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }

    def fetch(self, path: str, part: Path, progress: BytesProgress | None = None) -> None:
        """Copy one file, continuing a partial copy left by an interrupted run."""
        source = self.root / path
        part.parent.mkdir(parents=True, exist_ok=True)
        done = part.stat().st_size if part.exists() else 0
        if done > source.stat().st_size:
            part.unlink()
            done = 0
        with source.open("rb") as reader, part.open("ab") as writer:
            reader.seek(done)
            shutil.copyfileobj(reader, writer, 1 << 20)


class GitHubFileSource:
    """The json files kept in the GitHub repository ``jam-cc/MMAD`` (raw file URLs)."""

    def __init__(self, base: str = GITHUB_BASE, ref: str = GITHUB_REF, *, retries: int = 3, backoff: float = 1.0):
        self.base = base.rstrip("/")
        self.ref = ref
        self._retries = retries
        self._backoff = backoff

    def url(self, name: str) -> str:
        """The raw URL of one of the json files."""
        return f"{self.base}/{GITHUB_REPO}/{self.ref}/{GITHUB_PATHS[name]}"

    def fetch(self, name: str, part: Path) -> bool:
        """Fetch a json file into ``part``; False when the repository does not have it (404)."""
        if name not in GITHUB_PATHS:
            return False
        return fetch_url(self.url(name), part, retries=self._retries, backoff=self._backoff, missing_ok=True)
