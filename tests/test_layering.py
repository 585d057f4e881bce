"""The package's layering (README "Architecture"): a module imports only from layers below its own or from its
own package, and no two modules import each other, directly or through others. Imports inside functions count
too: a lazy import that dodges a cycle is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "poserepro"

#: bottom to top; a module may import from a lower layer, or from inside its own top-level package
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "_version"),
    ("io",),
    ("geometry", "keypoints"),
    ("draw",),
    ("recipes",),
    ("results",),
    ("codecs",),
    ("losses",),
    ("models", "data"),
    ("evaluation",),
    ("weights",),
    ("families",),
    ("engine",),
    ("pretrain",),  # a training job of its own (DINO); the sweeps run it before the "-Dino" cells fine-tune
    ("bench", "sweeps", "report", "curves", "explain", "regression", "infer", "export"),
    ("cli",),
    ("__init__", "__main__"),
)
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every ``poserepro`` module ``path`` imports (absolute and relative, at any depth in the file)."""
    mod = module_name(path, root)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    known = {module_name(p, root) for p in root.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == root.name}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            for alias in node.names:  # ``from pkg import module`` imports the module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m != mod}


def layer(mod: str) -> tuple[int, str]:
    """``(layer index, top-level package)`` of a module name."""
    parts = mod.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYER_OF:
        raise AssertionError(f"{mod}: its package {top!r} has no layer in tests/test_layering.py LAYERS")
    return LAYER_OF[top], top


def violations(root: Path = PACKAGE) -> list[str]:
    """Upward or sideways imports: ``"a -> b"`` where ``b`` is not below ``a`` and not in ``a``'s package."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        src = module_name(path, root)
        (ls, ts) = layer(src)
        for dst in sorted(imports_of(path, root)):
            (ld, td) = layer(dst)
            if ld >= ls and td != ts:
                bad.append(f"{src} -> {dst}")
    return bad


def cycles(root: Path = PACKAGE) -> list[list[str]]:
    """Module-level import cycles (strongly connected components of more than one module)."""
    graph = {module_name(p, root): imports_of(p, root) for p in root.rglob("*.py")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_upward_or_sideways_import() -> None:
    bad = violations()
    assert not bad, "imports against the layering (README 'Architecture'):\n  " + "\n  ".join(bad)


def test_no_import_cycle() -> None:
    found = cycles()
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_a_planted_upward_import_fails(tmp_path: Path) -> None:
    """The checks are not vacuous: a copy of the package with one planted upward import (a codec reaching into
    the engine) and one planted cycle (two floor modules importing each other) fails both."""
    import shutil

    copy = tmp_path / "poserepro"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(copy) == [] and cycles(copy) == []
    codec = copy / "codecs" / "flip.py"
    codec.write_text(codec.read_text() + "\n\ndef _planted():\n    from ..engine import train  # noqa\n")
    assert violations(copy) == ["poserepro.codecs.flip -> poserepro.engine"]
    (copy / "geometry.py").write_text((copy / "geometry.py").read_text() + "\nfrom . import keypoints  # noqa\n")
    (copy / "keypoints.py").write_text((copy / "keypoints.py").read_text() + "\nfrom . import geometry  # noqa\n")
    assert ["poserepro.geometry", "poserepro.keypoints"] in cycles(copy)


@pytest.mark.parametrize("mod", ["poserepro.engine.loop", "poserepro.families.base"])
def test_imports_are_resolved(mod: str) -> None:
    """The resolver sees relative imports (a check that found no imports would pass everything)."""
    path = PACKAGE.joinpath(*mod.split(".")[1:]).with_suffix(".py")
    assert imports_of(path), mod
