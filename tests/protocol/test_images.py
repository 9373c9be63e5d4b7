"""Image files as the protocol sends them: sizes, and unreadable files named with what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmad.errors import DataError
from mmad.protocol import images
from mmad.protocol.encoding import EncodedImage, ImageSettings, encode_image
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart


def test_a_photo_is_resized_to_the_longest_side(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (1000, 500), (120, 80, 40)).save(path)
    encoded = encode_image(path, ImageSettings(max_side=512))
    assert (encoded.width, encoded.height) == (512, 256)
    original = encode_image(path, ImageSettings(original=True))
    assert (original.width, original.height) == (1000, 500) and original.data == path.read_bytes()


@pytest.mark.parametrize(("content", "reason"), [(b"", "an empty file"), (b"<html>", "not an image format")])
def test_an_unreadable_file_is_named_with_the_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "query.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"cannot read image {path}: {reason}") as caught:
        encode_image(path, ImageSettings())
    assert "BytesIO" not in str(caught.value)


def _photos(folder: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGB", (40 + i, 30), (10 * i % 256, 200 - 7 * i % 200, 90)).save(path)
        paths.append(str(path))
    return paths


def test_a_large_prefetch_encodes_in_worker_processes_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #22: images are prepared in other processes (no GIL taken from the event loop); a
    request asking for one the prefetch has not reached yet is served by them too."""
    paths = _photos(tmp_path, 8)
    settings = ImageSettings()
    expected = {p: encode_image(Path(p), settings) for p in paths}
    monkeypatch.setattr(images, "POOL_MIN_IMAGES", 4)

    def not_here(path: Path, settings: ImageSettings) -> EncodedImage:
        raise AssertionError(f"{path} was encoded in the run's own process")

    monkeypatch.setattr(images, "encode_image", not_here)  # the spawned workers import their own
    encoder = ImageEncoder(settings)
    thread = encoder.prefetch(paths, ahead=2)
    try:
        got = {p: encoder.encode(ImagePart(path=p)) for p in reversed(paths)}  # the last first: not reached yet
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        encoder.stop()
    assert encoder.workers >= 1
    for path, encoded in got.items():
        assert encoded.data == expected[path].data and encoded.digest == expected[path].digest
        assert encoded.data_url == expected[path].data_url


def test_pooled_workers_perturb_query_images_as_the_run_itself_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker imports the perturbations only for a perturbed query: queries come back perturbed,
    templates clean, byte for byte what the run's own process makes of them."""
    from mmad.protocol.perturb import parse_perturb

    paths = _photos(tmp_path, 6)
    settings = ImageSettings(perturb="dark=0.5,noise=0.05")
    perturb = parse_perturb(settings.perturb)
    queries, templates = paths[:3], paths[3:]
    monkeypatch.setattr(images, "POOL_MIN_IMAGES", 4)
    expected = {
        p.path: encode_image(Path(str(p.path)), settings, perturb if p.role == "query" else None)
        for p in [ImagePart(path=q, role="query") for q in queries]
        + [ImagePart(path=t, role="template") for t in templates]
    }

    def not_here(*args: object) -> EncodedImage:
        raise AssertionError("encoded in the run's own process, not by a worker")

    monkeypatch.setattr(images, "encode_image", not_here)  # a worker that failed would fall back to it
    encoder = ImageEncoder(settings)
    parts = [ImagePart(path=p, role="query") for p in queries] + [ImagePart(path=p, role="template") for p in templates]
    thread = encoder.prefetch(parts, ahead=8)
    try:
        thread.join(timeout=60)
        got = [encoder.encode(part) for part in parts]
    finally:
        encoder.stop()
    assert encoder.workers >= 1
    for part, encoded in zip(parts, got, strict=True):
        assert encoded.data == expected[part.path].data, part
    assert got[0].data != encode_image(Path(queries[0]), settings).data  # the query was perturbed


def test_an_unreadable_file_in_a_pooled_prefetch_is_named_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _photos(tmp_path, 5)
    Path(paths[2]).write_bytes(b"<html>")
    monkeypatch.setattr(images, "POOL_MIN_IMAGES", 4)
    encoder = ImageEncoder(ImageSettings())
    thread = encoder.prefetch(paths)
    try:
        with pytest.raises(DataError, match=rf"cannot read image {paths[2]}: not an image format"):
            encoder.encode(ImagePart(path=paths[2]))
        assert encoder.encode(ImagePart(path=paths[4])).width == 512
        thread.join(timeout=60)
    finally:
        encoder.stop()
    assert encoder.workers >= 1


PREFETCH = """
import multiprocessing, sys, time
from pathlib import Path
from PIL import Image
from mmad.protocol import images
from mmad.protocol.encoding import ImageSettings
from mmad.protocol.images import ImageEncoder
from mmad.protocol.messages import ImagePart

def prefetched():
    folder = Path(sys.argv[1])
    paths = []
    for i in range(4):
        path = folder / f"img{i}.png"
        Image.new("RGB", (20 + i, 20), (i, 0, 0)).save(path)
        paths.append(str(path))
    images.POOL_MIN_IMAGES = 2
    encoder = ImageEncoder(ImageSettings())
    encoder.prefetch(paths).join(60)
    return encoder, paths
"""
"""A script's start: four images prefetched by a pool (when one may start)."""

SCRIPT = (
    PREFETCH
    + """
def main():
    encoder, paths = prefetched()
    sizes = [encoder.encode(ImagePart(path=p)).width for p in paths]
    encoder.stop()
    print(encoder.workers, sizes)
"""
)


@pytest.mark.parametrize("guarded", [True, False])
def test_a_script_without_a_main_guard_gets_no_worker_processes(tmp_path: Path, guarded: bool) -> None:
    """A spawned worker imports the program's main script: one that runs mmad at its top level would
    run again in each worker (asking every question again), so such a script keeps the thread."""
    import subprocess
    import sys

    script = tmp_path / "run_it.py"
    script.write_text(SCRIPT + ('\nif __name__ == "__main__":\n    main()\n' if guarded else "\nmain()\n"))
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    workers, _, sizes = done.stdout.strip().partition(" ")
    assert (int(workers) >= 1) is guarded and sizes == "[512, 512, 512, 512]"


KILLED_SCRIPT = (
    PREFETCH
    + """
if __name__ == "__main__":
    encoder, paths = prefetched()
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(600)
"""
)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state  # exited; a container's init may not reap it


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_image_workers_leave_when_the_run_is_killed_outright(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers.processes import wait_until

    script = tmp_path / "killed.py"
    script.write_text(KILLED_SCRIPT)
    run = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout is not None
        workers = [int(pid) for pid in run.stdout.readline().split()]
        assert workers and not any(_gone(pid) for pid in workers)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        assert wait_until(lambda: all(_gone(pid) for pid in workers), 15), "a worker outlived its run"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
        if run.stdout is not None:
            run.stdout.close()


@pytest.mark.subprocess
def test_an_image_worker_imports_pillow_not_the_rest_of_mmad() -> None:
    """Each spawned worker imports the encoding module alone: prompt models (pydantic) and numpy cost every
    worker of every run a quarter of a second (issue #22)."""
    check = (
        "import sys, mmad.protocol.encoding as e; "
        "heavy = sorted(m for m in ('pydantic', 'numpy', 'openai', 'mmad.protocol.messages') if m in sys.modules); "
        "print(heavy); assert not heavy, heavy; assert callable(e.encode_in_worker)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
