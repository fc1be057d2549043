"""Import layering of the package, read from the source with ``ast`` (nothing is imported):

(a) no module inside the package imports the package root: not ``from metabo import X`` for a
    root-level name X (submodules are fine), not ``import metabo`` then ``metabo.X``, not
    ``metabo.__version__`` (``from metabo.version import __version__`` is the way);
(b) no module in ``metabo/commands`` imports ``metabo.cli`` (the CLI imports the commands);
(c) no private name (one leading underscore, not a dunder) is imported from another metabo
    module: ``from metabo.a import _b``, relative imports and private module paths included.

KNOWN lists the violations present when this test was written, each with its file and name; the
test fails on any other violation, and on a KNOWN entry that is gone (remove it when fixed).
The checker itself is tested on hand-written sources first, so an empty result means something.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "metabo"

# (rule, file relative to the repository root, name): fix these in the library, then drop them.
KNOWN: set[tuple[str, str, str]] = set()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _submodules(package: Path) -> set[str]:
    """Dotted names of every module and subpackage under ``package`` (``metabo.x.y``)."""
    names = {_module_name(p, package) for p in package.rglob("*.py")}
    return names | {_module_name(p / "__init__.py", package) for p in package.rglob("*") if p.is_dir()}


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def violations(source: str, module: str, is_package: bool, submodules: set[str], root: str = "metabo"):
    """[(rule, line, name)] for one module's source (``module``: its dotted name)."""
    tree = ast.parse(source)
    found = []
    in_commands = module == f"{root}.commands" or module.startswith(f"{root}.commands.")
    root_aliases = set()  # local names bound to the package root by ``import metabo [as m]``
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == root:
                    root_aliases.add(alias.asname or root)
                elif alias.name.startswith(f"{root}.") and alias.asname is None:
                    root_aliases.add(root)  # ``import metabo.x`` binds ``metabo`` too
                if in_commands and (alias.name == f"{root}.cli" or alias.name.startswith(f"{root}.cli.")):
                    found.append(("commands-import-cli", node.lineno, alias.name))
                if alias.name.startswith(f"{root}.") and any(_private(p) for p in alias.name.split(".")):
                    found.append(("private-import", node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            source_module = _resolve(node, module, is_package)
            if source_module != root and not source_module.startswith(f"{root}."):
                continue
            for alias in node.names:
                target = f"{source_module}.{alias.name}"
                if source_module == root and target not in submodules:
                    found.append(("root-import", node.lineno, alias.name))
                if in_commands and (target == f"{root}.cli" or source_module == f"{root}.cli"
                                    or source_module.startswith(f"{root}.cli.")):
                    found.append(("commands-import-cli", node.lineno, target if source_module == root else source_module))
                private_path = any(_private(p) for p in source_module.split("."))
                if source_module != module and (_private(alias.name) or private_path):
                    found.append(("private-import", node.lineno, f"{source_module}.{alias.name}"))
        elif isinstance(node, ast.Call):
            # importlib.import_module("metabo.cli") from a command module.
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (in_commands and name == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith(f"{root}.cli")):
                found.append(("commands-import-cli", node.lineno, node.args[0].value))
    if root_aliases:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in root_aliases
                    and f"{root}.{node.attr}" not in submodules):
                found.append(("root-import", node.lineno, f"{root}.{node.attr}"))
    return found


def package_violations(package: Path = PACKAGE):
    """{(rule, file, name): [lines]} over every module of the package except its root."""
    submodules = _submodules(package)
    out: dict[tuple[str, str, str], list[int]] = {}
    for path in sorted(package.rglob("*.py")):
        if path == package / "__init__.py":
            continue  # the root may of course use its own names
        module = _module_name(path, package)
        rel = path.relative_to(package.parent).as_posix()
        for rule, line, name in violations(path.read_text(encoding="utf-8"), module, path.name == "__init__.py",
                                           submodules):
            out.setdefault((rule, rel, name), []).append(line)
    return out


# ---- the checker on hand-written sources ------------------------------------------------------
SUBMODULES = {"metabo", "metabo.cli", "metabo.data", "metabo.version", "metabo.commands", "metabo.commands.run",
              "metabo.gp", "metabo.gp.model"}


def rules(source, module="metabo.gp.model", is_package=False):
    return sorted((rule, name) for rule, _, name in violations(source, module, is_package, SUBMODULES))


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from metabo import __version__", [("root-import", "__version__")]),
        ("from metabo import TuningLog, data", [("root-import", "TuningLog")]),
        ("import metabo\nv = metabo.__version__", [("root-import", "metabo.__version__")]),
        ("import metabo as m\nm.Space", [("root-import", "metabo.Space")]),
        ("import metabo.data\nmetabo.data.read_log", []),
        ("from .. import Space", [("root-import", "Space")]),
        ("from .. import data", []),
        ("from metabo.version import __version__", []),
        ("from metabo.data import _private_helper", [("private-import", "metabo.data._private_helper")]),
        ("from ..data import _helper, public", [("private-import", "metabo.data._helper")]),
        ("from metabo.gp._impl import thing", [("private-import", "metabo.gp._impl.thing")]),
        ("import metabo.gp._impl", [("private-import", "metabo.gp._impl")]),
        ("from numpy import _NoValue\nfrom metabo.data import __all__", []),
        ("def f():\n    from metabo import __version__\n", [("root-import", "__version__")]),
        ('"""from metabo import Space"""', []),
    ],
)
def test_checker_finds_root_and_private_imports(source, expected):
    assert rules(source) == sorted(expected)


def test_checker_finds_commands_importing_the_cli():
    for source in ("import metabo.cli", "from metabo.cli import main", "from metabo import cli", "from .. import cli",
                   "from ..cli import main", "import importlib\nimportlib.import_module('metabo.cli')"):
        assert [r for r, _ in rules(source, module="metabo.commands.run")] == ["commands-import-cli"], source
    assert rules("from metabo.cli import main", module="metabo.gp.model") == []  # only commands are barred
    # The commands package's own __init__ resolves ``from . import x`` inside itself.
    assert rules("from . import run", module="metabo.commands", is_package=True) == []
    assert rules("from .. import cli", module="metabo.commands", is_package=True) == [
        ("commands-import-cli", "metabo.cli")]


def test_checker_sees_the_whole_package():
    modules = _submodules(PACKAGE)
    assert {"metabo.cli", "metabo.version", "metabo.commands", "metabo.collect.bundle", "metabo.gp"} <= modules
    assert "metabo.commands.common" in modules


# ---- the package ------------------------------------------------------------------------------
def test_no_new_layering_violations():
    found = package_violations()
    new = {key: lines for key, lines in found.items() if key not in KNOWN}
    assert not new, "layering violations (file: lines, name): " + "; ".join(
        f"{rule} {file}:{','.join(map(str, lines))} {name}" for (rule, file, name), lines in sorted(new.items()))


def test_known_violations_are_still_present():
    gone = KNOWN - set(package_violations())
    assert not gone, f"fixed, remove from KNOWN: {sorted(gone)}"
