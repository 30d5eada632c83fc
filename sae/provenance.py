"""What code a stage runs: the project modules a script can import, and their fingerprint.

`project_imports` follows a script's imports through the project's own modules (every
`import` statement, those inside functions included, and the package __init__ files each
import runs), so dvc.yaml's deps can be checked against it (tests/test_deps.py) and a
checkpoint can be tied to the code that wrote it (`code_fingerprint`).
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "sae"


def _module_file(root: Path, name: str) -> Path | None:
    """sae.x.y -> root/sae/x/y.py or root/sae/x/y/__init__.py (None when it is not a module)."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    else:
        parts = parts[:-1]
    return ".".join(parts)


def _imported_names(root: Path, path: Path) -> set[str]:
    """Dotted names of project modules (or their attributes) that `path` imports anywhere."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .core import X
                package = _package_of(root, path).split(".")
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def project_imports(script, root) -> set[Path]:
    """Every project file `script` can run: its own imports of project modules, followed
    transitively (package __init__ files included). Paths are absolute."""
    root, script = Path(root).resolve(), Path(script).resolve()
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for name in _imported_names(root, path):
            for part in _with_parents(name):
                file = _module_file(root, part)
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


def code_fingerprint(script, root) -> str:
    """sha256 over the script and every project file it can import (path and bytes)."""
    root = Path(root).resolve()
    files = sorted({Path(script).resolve(), *project_imports(script, root)})
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()
