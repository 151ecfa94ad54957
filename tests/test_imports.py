"""The import graph of ``services/nhigw``, read from the source (AST, nothing imported).

No module may reach itself through imports (every import counts: top level, inside a function,
under ``TYPE_CHECKING``), and ``nhigw.contracts`` imports nothing of the project outside itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "services" / "nhigw"


def module_name(path: Path, root: Path = PKG) -> str:
    parts = ["nhigw", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], root: Path = PKG) -> set[str]:
    """The project modules a file imports (``from a import b`` names module ``a.b`` when that is one)."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([base] if base else [])])
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import nhigw.a.b` of a name inside a module
                name = name.rpartition(".")[0]
            if name and name != me and name != "nhigw":  # the package's face (__version__) is no edge
                out.add(name)
    return out


def graph(root: Path = PKG) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    return {module_name(f, root): imports_of(f, modules, root) for f in files}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_cycles_finds_a_circle_and_only_it() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_of_reads_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "sub/__init__.py", "sub/b.py", "sub/c.py"):
        (pkg / name).write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nfrom . import c\nif TYPE_CHECKING:\n    from nhigw.a import X\n"
        "def f():\n    import nhigw.sub.c\n    from nhigw import __version__\n"
    )
    files = sorted(pkg.rglob("*.py"))
    modules = {module_name(f, pkg) for f in files}
    assert imports_of(pkg / "sub" / "b.py", modules, pkg) == {"nhigw.a", "nhigw.sub.c"}


def test_no_import_cycle_in_the_package() -> None:
    g = graph()
    assert len(g) > 50 and "nhigw.gateway.service" in g["nhigw.gateway.app"]  # the graph is really read
    assert cycles(g) == []


def test_contracts_import_nothing_else_of_the_project() -> None:
    outside = {(m, dep) for m, deps in graph().items() if m.startswith("nhigw.contracts") for dep in deps if not dep.startswith("nhigw.contracts")}
    assert outside == set()


# The command-line modules read the environment (flags over environment, once: ``nhigw.cli.ENVIRONMENT``);
# ``common/secretbox.py`` reads its own key-file variables.
ENVIRONMENT_READERS = {"nhigw.cli", "nhigw.gateway.cli", "nhigw.compat.cli", "nhigw.common.secretbox"}


def environment_uses(path: Path) -> list[int]:
    """Lines that touch ``os.environ`` / ``os.getenv`` / ``os.putenv``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv") and isinstance(node.value, ast.Name) and node.value.id == "os":
            out.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in ("environ", "getenv", "putenv") for a in node.names):
            out.append(node.lineno)
    return sorted(out)


def test_environment_uses_finds_every_form(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom os import environ\na = os.environ.get('X')\nb = os.getenv('Y')\nos.environ['Z'] = '1'\nc = os.path.join('a')\n")
    assert environment_uses(f) == [2, 3, 4, 5]


def test_nothing_below_the_cli_reads_or_writes_the_environment() -> None:
    found = {(module_name(f), line) for f in sorted(PKG.rglob("*.py")) if module_name(f) not in ENVIRONMENT_READERS for line in environment_uses(f)}
    assert found == set()
    assert environment_uses(PKG / "cli.py")  # the check sees the CLI's own reads


# A function longer than this mixes decisions that are read (and tested) better apart.
MAX_FUNCTION_LINES = 80
# Functions still being split, each by its qualified name (module, function): empty once they are.
LONG_FUNCTIONS_ALLOWED: frozenset[tuple[str, str]] = frozenset()


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """Each function (nested ones and methods too) of a file whose lines, decorators and docstring
    included, are more than ``limit``: its dotted name within the module and its length."""
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    length = (child.end_lineno or child.lineno) - first + 1
                    if length > limit:
                        out.append((name, length))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return out


def test_long_functions_measures_nested_functions_and_methods(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(4))
    f.write_text(f"def short():\n    pass\n\ndef long():\n{body}\n    def inner():\n{body.replace('    ', '        ')}\n\nclass C:\n    @staticmethod\n    def m():\n{body.replace('    ', '        ')}\n")
    assert long_functions(f, limit=4) == [("long", 10), ("long.inner", 5), ("C.m", 6)]
    assert long_functions(f, limit=10) == []


def test_no_function_in_services_is_over_80_lines() -> None:
    found = {(module_name(f), name): n for f in sorted(PKG.rglob("*.py")) for name, n in long_functions(f)}
    assert set(found) - LONG_FUNCTIONS_ALLOWED == set(), found
    assert LONG_FUNCTIONS_ALLOWED - set(found) == set()  # a function split since: its entry goes too


def class_names(path: Path) -> set[str]:
    """The names of the classes a file defines, at any depth (a nested class is as visible in a traceback)."""
    return {node.name for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))) if isinstance(node, ast.ClassDef)}


def test_class_names_reads_nested_classes(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("class A:\n    class B:\n        pass\n\ndef f():\n    class C:\n        pass\n")
    assert class_names(f) == {"A", "B", "C"}


def test_no_class_name_is_defined_in_two_modules() -> None:
    """Two classes of one name (a gateway ``CloudClient`` beside the SDK's) read as one in logs,
    tracebacks and reviews; each name says which one it is."""
    where: dict[str, list[str]] = {}
    for f in sorted(PKG.rglob("*.py")):
        for name in class_names(f):
            where.setdefault(name, []).append(module_name(f))
    assert len(where) > 200 and "UpstreamClient" in where  # the classes are really read
    assert {name: mods for name, mods in where.items() if len(mods) > 1} == {}
