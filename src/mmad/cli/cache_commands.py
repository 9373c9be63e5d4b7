"""`mmad cache info` and `mmad cache clear`: the response cache that makes a re-run free."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from mmad.cli.common import console
from mmad.errors import CacheError, ConfigError

cache_app = typer.Typer(
    help="The response cache: replies stored by request hash, so a re-run costs nothing.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the cache commands to the app."""
    app.add_typer(cache_app, name="cache")


def _folder(folder: Path | None) -> Path:
    from mmad.run.cache import default_cache_dir

    where = folder if folder is not None else default_cache_dir()
    if where.exists() and not where.is_dir():
        # "the first run makes it" would be wrong: a run refuses a cache folder that is a file
        named = "--dir" if folder is not None else "MMAD_CACHE_DIR"
        msg = f"{named} {where} is a file, not a folder; point it at a folder (it is made if missing)"
        raise ConfigError(msg)
    return where


def _exists(folder: Path) -> bool:
    from mmad.run.cache import DATABASE, legacy_files

    return (folder / DATABASE).is_file() or bool(legacy_files(folder))


DIR_HELP = "the cache folder [default: $MMAD_CACHE_DIR, else ~/.cache/mmad/responses]"


@cache_app.command("info")
def info_command(
    folder: Path = typer.Option(None, "--dir", help=DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the figures as json"),
) -> None:
    """The cache's folder, replies, size and hits.

    Where the cache is, how many replies it holds, its size against its limit and how often it
    answered a request.
    """
    from mmad.run.cache import DATABASE, ResponseCache

    where = _folder(folder)
    if not _exists(where):
        if as_json:
            console.print_json(json.dumps({"path": str(where / DATABASE), "entries": 0, "exists": False}))
        else:
            console.print(f"no response cache at {where} yet: the first run with the cache on makes it")
        return
    cache = ResponseCache(where, preload=False)
    try:
        info = cache.info()
    finally:
        cache.close()
    if as_json:
        console.print_json(json.dumps({**asdict(info), "path": str(info.path), "exists": True}))
        return
    console.print(f"path     {info.path}")
    console.print(f"entries  {info.entries:,}")
    console.print(
        f"size     {info.reply_bytes / 1e6:,.1f} MB of replies ({info.file_bytes / 1e6:,.1f} MB on disk); "
        f"limit {_megabytes(info.max_bytes)} MB (MMAD_CACHE_MAX_MB), oldest dropped first"
    )
    console.print(f"hits     {info.hits:,} (requests answered from the cache since it was made or cleared)")
    if info.legacy_files:
        console.print(
            f"legacy   {info.legacy_files:,} one-file-per-reply files of an older mmad, already read into the "
            "database; `mmad cache clear` removes them"
        )


def _megabytes(count: int) -> str:
    # whole megabytes, except a limit under one (MMAD_CACHE_MAX_MB=0.5), which read "limit 0 MB"
    mb = count / 1e6
    return f"{mb:,.0f}" if mb >= 1 else f"{mb:.4g}"


@cache_app.command("clear")
def clear_command(folder: Path = typer.Option(None, "--dir", help=DIR_HELP)) -> None:
    """Remove every stored reply (runs ask their questions again).

    A damaged database, which every run refuses, is removed whole.
    """
    from mmad.run.cache import DATABASE, ResponseCache, damaged

    where = _folder(folder)
    if not _exists(where):
        console.print(f"no response cache at {where}: nothing to clear")
        return
    try:
        cache = ResponseCache(where, preload=False)
    except CacheError as exc:
        # A damaged database is what every other command's error sends the user here to fix, so
        # clear must not refuse it too: the file holds only replies that a run can ask again.
        if not damaged(exc):
            raise
        for path in sorted(where.glob(DATABASE + "*")):
            path.unlink(missing_ok=True)
        console.print(
            f"removed the damaged response cache {where / DATABASE} ({exc.__cause__}); the next run starts it afresh"
        )
        return
    try:
        removed = cache.clear()
    finally:
        cache.close()
    console.print(f"removed {removed:,} replies from {where}")
