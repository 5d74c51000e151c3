"""Layers that only look down, read from the code itself (issue "One clear house").

The data flows one way: base utilities -> data -> models -> engines -> classifier -> training ->
strategies -> sweeps -> studies -> reports -> cli, one folder each. Each module belongs to one
layer (the folder it sits in), and may import
from its own layer and the layers before it, never from a later one; imports sit at the top of
a module, where a reader sees them, except for optional third-party packages (ONNX Runtime),
which are imported where they are used so that identikit runs without them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "identikit"

# Layer by layer, bottom first: the modules (or packages) in each, by dotted name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("base",)),
    ("data", ("data",)),
    ("models", ("models",)),
    ("engines", ("engines",)),
    ("classifier", ("classifier",)),
    ("training", ("training",)),
    ("strategies", ("strategies",)),
    ("sweeps", ("sweeps",)),
    ("studies", ("studies",)),
    ("reports", ("reports",)),
    ("cli", ("cli", "__main__", "")),  # "" is the package itself: its public API
]
OPTIONAL = ("onnxruntime", "onnx")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> int | None:
    """The index of the layer ``name`` (dotted, without ``identikit.``) belongs to."""
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if name == member or (member and name.startswith(member + ".")):
                return index
    return None


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The identikit modules an import statement reads, without the ``identikit.`` prefix."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.module == "identikit":
        names = [f"identikit.{alias.name}" for alias in node.names]
    else:
        names = [node.module or ""]
    return [n.removeprefix("identikit.") for n in names if n.split(".")[0] == "identikit"]


def test_every_module_has_a_layer() -> None:
    assert [module_name(p) for p in modules() if layer_of(module_name(p)) is None] == []


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_imports_only_look_down(path: Path) -> None:
    own = layer_of(module_name(path))
    assert own is not None
    upward = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in imported(node):
                other = layer_of(name)
                if other is not None and other > own:
                    upward.append(f"{name} ({LAYERS[other][0]}) from {LAYERS[own][0]}")
    assert upward == []


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_imports_sit_at_the_top(path: Path) -> None:
    hidden = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = (
                        [a.name for a in inner.names]
                        if isinstance(inner, ast.Import)
                        else [inner.module or ""]
                    )
                    hidden += [n for n in names if n.split(".")[0] not in OPTIONAL]
    assert hidden == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """An upward import and a hidden one, written out, are both found."""
    upward = ast.parse("from identikit.reports.page import build_report\n")
    node = upward.body[0]
    assert isinstance(node, ast.ImportFrom)
    (name,) = imported(node)
    assert layer_of(name) == len(LAYERS) - 2 and layer_of("data") == 1
    hidden = ast.parse("def f():\n    import identikit.data.datasets\n")
    inner = [n for n in ast.walk(hidden) if isinstance(n, ast.Import)]
    assert inner and imported(inner[0]) == ["data.datasets"]


def test_the_folders_show_the_layers() -> None:
    """Every module sits in its layer's folder: the package root holds only the public API."""
    folders = {m for _, members in LAYERS for m in members if m and m != "__main__"}
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"}]
    assert loose == []
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == folders
