"""Shipped code imports only what its install brings.

`make run` installs the `workbench` extra and the SDK ships with the base dependencies, while the
tests install much more (statsmodels, fastapi, playwright). A page that imports a test-only
package passes every test and crashes for users, so this test reads pyproject.toml, follows each
install's requirements through the installed packages' metadata, and checks every import in
`app/`, `analysis/` and `collectors/` against it:

- `collectors/instrumentation/` (the SDK a voice agent imports): module-level imports from the
  base dependencies; imports inside functions may also use the optional `supabase` extra, which
  the Supabase sink asks for by name.
- everything else: the `workbench` extra.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.conftest import REPO

OURS = {"app", "analysis", "collectors", "tests", "bench"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions_of(extras: set[str]) -> set[str]:
    """Every distribution our project brings with these extras (and its base dependencies),
    following requirements (markers evaluated for this interpreter) through installed metadata."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    me = _norm(project["name"])
    todo = [Requirement(r) for r in project["dependencies"]]
    seen_extras: set[str] = set()
    pending = set(extras)
    while pending:  # our own extras may name each other (workbench brings [supabase])
        extra = pending.pop()
        seen_extras.add(extra)
        for req in map(Requirement, project["optional-dependencies"][extra]):
            if _norm(req.name) == me:
                pending |= set(req.extras) - seen_extras
            else:
                todo.append(req)
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(_norm(r.name), frozenset(r.extras)) for r in todo]
    while queue:
        key = queue.pop()
        if key in seen:
            continue
        seen.add(key)
        name, wanted = key
        for req in map(Requirement, md.requires(name) or []):
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
                continue
            queue.append((_norm(req.name), frozenset(req.extras)))
    found = {name for name, _ in seen}
    return found


def third_party_imports(folder: Path, root: Path = REPO) -> list[tuple[str, str, bool]]:
    """(top-level module, where, imported inside a function) for every non-stdlib import."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        nested = set()
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                nested |= {id(n) for n in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in OURS or top in sys.stdlib_module_names:
                    continue
                where = f"{path.relative_to(root)}:{node.lineno}"
                found.append((top, where, id(node) in nested))
    return found


def _missing(imports, allowed: set[str]) -> list[str]:
    owners = md.packages_distributions()
    problems = []
    for module, where, _ in imports:
        dists = {_norm(d) for d in owners.get(module, [])}
        if not dists & allowed:
            problems.append(f"{where} imports {module} ({', '.join(sorted(dists)) or 'unknown'})")
    return problems


def test_workbench_code_imports_only_what_the_workbench_extra_installs():
    allowed = distributions_of({"workbench"})
    imports = [
        imp
        for folder in ("app", "analysis", "collectors")
        for imp in third_party_imports(REPO / folder)
        if not imp[1].startswith("collectors/instrumentation/")
    ]
    assert imports, "the walk found no imports at all"
    assert _missing(imports, allowed) == []


def test_the_sdk_imports_only_its_base_install_and_the_supabase_extra_lazily():
    imports = third_party_imports(REPO / "collectors" / "instrumentation")
    top_level = [imp for imp in imports if not imp[2]]
    lazy = [imp for imp in imports if imp[2]]
    assert _missing(top_level, distributions_of(set())) == []
    assert _missing(lazy, distributions_of({"supabase"})) == []


def test_the_check_catches_a_test_only_package(tmp_path):
    """The guard itself: statsmodels (test extra only) is refused for the workbench."""
    (tmp_path / "page.py").write_text("def f():\n    import statsmodels.api\n")
    imports = third_party_imports(tmp_path, root=tmp_path)
    assert _missing(imports, distributions_of({"workbench"})) == [
        "page.py:2 imports statsmodels (statsmodels)"
    ]
    assert _missing(imports, distributions_of({"test"})) == []
