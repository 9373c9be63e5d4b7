"""A sweep file's errors name the file, also from the copies the CLI makes of its grid."""

from __future__ import annotations

import pytest

from mmad.errors import ConfigError
from mmad.run.sweep import SweepSpec, shared_cache, with_absolute_paths


def test_the_grid_copies_keep_the_file_name_in_their_errors() -> None:
    spec = SweepSpec.parse({"data": "d", "models": ["random"], "settings": {"knowledge": "k.json"}}, source="grid.toml")
    copy = shared_cache(with_absolute_paths(spec))
    with pytest.raises(ConfigError, match=r"^grid\.toml: \[settings\] knowledge: no cell would use it"):
        copy.cells()
