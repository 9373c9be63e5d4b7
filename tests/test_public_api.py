import importlib

import mmad


def test_all_names_resolve_to_their_definitions() -> None:
    assert "__version__" in mmad.__all__
    for name in mmad.__all__:
        value = getattr(mmad, name)
        assert value is not None
        if name != "__version__":
            assert getattr(importlib.import_module(mmad._EXPORTS[name]), name) is value
    assert sorted(dir(mmad)) == sorted(mmad.__all__)


def test_unknown_names_raise() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mmad.nope


def test_library_code_never_prints() -> None:
    import ast
    from pathlib import Path

    root = Path(mmad.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
