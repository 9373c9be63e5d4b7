"""Image files as the protocol sends them: sizes, and unreadable files named with what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mmad.errors import DataError
from mmad.protocol.images import ImageSettings, encode_image


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
