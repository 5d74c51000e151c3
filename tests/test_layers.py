"""Layers that only look down, read from the code itself (issue "One clear house").

The data flows one way: base utilities -> data -> models -> engines -> classifier -> training ->
strategies -> sweeps -> studies -> reports -> api -> cli, one folder each. Each module belongs
to one layer (the folder it sits in), and may import from its own layer and the layers before
it, never from a later one; imports sit at the top of a module, where a reader sees them,
except for optional third-party packages (ONNX Runtime), which are imported where they are
used so that identikit runs without them.
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
    ("cluster", ("cluster",)),
    ("studies", ("studies",)),
    ("reports", ("reports",)),
    ("api", ("api",)),
    ("cli", ("cli", "__main__", "")),  # "" is the package itself: its public API
]
# Third-party packages imported where they are used, since identikit (or a test) runs without
# them: playwright drives the browser tests, and a GPU machine that installs nothing lacks it.
OPTIONAL = ("onnxruntime", "onnx", "sklearn", "ray", "playwright")


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


def hidden_imports(tree: ast.Module) -> list[str]:
    """The modules imported inside functions, bar the optional third-party packages."""
    hidden = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = (
                        [a.name for a in inner.names]
                        if isinstance(inner, ast.Import)
                        else [inner.module or ""]
                    )
                    hidden += [n for n in names if n.split(".")[0] not in OPTIONAL]
    return hidden


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_imports_sit_at_the_top(path: Path) -> None:
    assert hidden_imports(ast.parse(path.read_text())) == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """An upward import and a hidden one, written out, are both found."""
    upward = ast.parse("from identikit.reports.page import build_report\n")
    node = upward.body[0]
    assert isinstance(node, ast.ImportFrom)
    (name,) = imported(node)
    assert layer_of(name) == len(LAYERS) - 3 and layer_of("data") == 1
    hidden = ast.parse("def f():\n    import identikit.data.datasets\n")
    inner = [n for n in ast.walk(hidden) if isinstance(n, ast.Import)]
    assert inner and imported(inner[0]) == ["data.datasets"]


def test_the_folders_show_the_layers() -> None:
    """Every module sits in its layer's folder: the package root holds only the public API."""
    folders = {m for _, members in LAYERS for m in members if m and m != "__main__"}
    loose = [p.name for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"}]
    assert loose == []
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == folders


# --- The tests follow the package -------------------------------------------------------------

TESTS = Path(__file__).parent
CROSS_CUTTING = ("test_layers.py", "test_regression.py", "test_api.py")
"""Test modules about the package as a whole: its layers, its results bit for bit, and its
public API (``identikit.api``, which the package root re-exports)."""


def code_tested_by(name: str) -> Path | None:
    """The folder or module of the package that the test module ``name`` is about, when it is
    named ``test_<package>.py`` or ``test_<package>_<module>.py`` and that code exists (folder
    names hold no underscore; module names may)."""
    package, _, module = name.removeprefix("test_").removesuffix(".py").partition("_")
    folder = PACKAGE / package
    if not package or not folder.is_dir():
        return None
    if not module:
        return folder
    return folder / f"{module}.py" if (folder / f"{module}.py").is_file() else None


def other_tests(tree: ast.Module) -> list[str]:
    """The test modules (not the shared helpers or fixtures) that a module imports."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = f"tests.{node.module or ''}" if node.level else node.module or ""
            names += [f"{module}.{alias.name}" for alias in node.names]
    modules = {".".join(n.split(".")[:2]) for n in names}
    return sorted(m for m in modules if m.startswith("tests.test_"))


def test_every_test_module_is_named_after_what_it_tests() -> None:
    named = [p.name for p in sorted(TESTS.glob("test_*.py")) if p.name not in CROSS_CUTTING]
    assert [name for name in named if code_tested_by(name) is None] == []


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.stem)
def test_no_test_module_imports_another_or_hides_an_import(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert other_tests(tree) == []
    assert hidden_imports(tree) == []


def test_the_checks_of_the_tests_catch_what_they_are_for() -> None:
    """Modules named after the history of the work, or after code that does not exist, are
    found; and so is an import of one test module by another."""
    for history in ("test_first_hour.py", "test_judge_more.py", "test_hostile_folders.py"):
        assert code_tested_by(history) is None
    assert code_tested_by("test_base_nowhere.py") is None and code_tested_by("test_.py") is None
    assert code_tested_by("test_base_safe_files.py") == PACKAGE / "base" / "safe_files.py"
    assert code_tested_by("test_sweeps.py") == PACKAGE / "sweeps"
    imports = (
        "from tests.test_sweeps import QUIET\nfrom tests import test_data\nimport tests.helpers\n"
    )
    assert other_tests(ast.parse(imports)) == ["tests.test_data", "tests.test_sweeps"]
    assert other_tests(ast.parse("from .helpers import CONFIG\n")) == []


# --- Sizes: no wide signatures, no long functions ------------------------------------------------

MAX_PARAMETERS = 6
MAX_LINES = 60


def functions(tree: ast.Module) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Every function of a module, and whether it is public: defined at module level or in a
    public class, its name not starting with ``_`` (``__init__`` is public: it is the
    constructor)."""
    found: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]] = []

    def visit(node: ast.AST, public_scope: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                named = not child.name.startswith("_") or child.name == "__init__"
                found.append((child, public_scope and named))
                visit(child, False)  # functions inside a function are its own business
            elif isinstance(child, ast.ClassDef):
                visit(child, public_scope and not child.name.startswith("_"))

    visit(tree, True)
    return found


def parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters a caller can pass: positional, keyword-only and the ``*``/``**`` catch-alls,
    not ``self`` or ``cls``."""
    args = function.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    count = len([a for a in named if a.arg not in ("self", "cls")])
    return count + (args.vararg is not None) + (args.kwarg is not None)


def length(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the ``def`` (decorators excluded) to the function's last line."""
    return (function.end_lineno or function.lineno) - function.lineno + 1


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_no_public_function_takes_more_than_six_parameters(path: Path) -> None:
    wide = [
        f"{f.name} ({parameters(f)})"
        for f, public in functions(ast.parse(path.read_text()))
        if public and parameters(f) > MAX_PARAMETERS
    ]
    assert wide == []


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_no_function_is_longer_than_sixty_lines(path: Path) -> None:
    long = [
        f"{f.name} ({length(f)} lines)"
        for f, _ in functions(ast.parse(path.read_text()))
        if length(f) > MAX_LINES
    ]
    assert long == []


def test_the_size_checks_catch_what_they_are_for() -> None:
    """A wide public constructor and a long function, written out, are both found; a private
    helper may be wide, and ``self`` is not counted."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    source = (
        "class Model:\n"
        "    def __init__(self, a, b, c, d, e, f, *, g): ...\n"
        "def _helper(a, b, c, d, e, f, g): ...\n"
        "def fine(a, b, c, d, e, *rest): ...\n"
        f"def long():\n{body}\n"
    )
    found = {
        f.name: (parameters(f), length(f), public) for f, public in functions(ast.parse(source))
    }
    assert found["__init__"] == (7, 1, True)
    assert found["_helper"][0] == 7 and not found["_helper"][2]
    assert found["fine"][0] == 6
    assert found["long"][1] == MAX_LINES + 1


# --- The image shape is a property, not a literal ------------------------------------------------

# Where MNIST's numbers may be written: the dataset definitions and the architectures.
SHAPE_HOMES = ("data.datasets", "models.cnn", "models.mlp", "models.softmax")


def shape_literals(tree: ast.Module) -> list[int]:
    """The lines of ``tree`` that write 28 or 784 as a number."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in (28, 784)
    ]


@pytest.mark.parametrize("path", modules(), ids=module_name)
def test_the_image_shape_is_never_written_as_a_number(path: Path) -> None:
    if module_name(path) in SHAPE_HOMES:
        return
    assert shape_literals(ast.parse(path.read_text())) == []


def test_the_shape_check_catches_what_it_is_for() -> None:
    tree = ast.parse("x = torch.zeros(1, 1, 28, 28)\nflat = 784\nfine = '28'\n")
    assert sorted(shape_literals(tree)) == [1, 1, 2]
