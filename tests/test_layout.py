"""The house by stage: every module imports only its own stage and the stages below it, no import
circle (runtime, lazy or for type checking), and no folder of more than 15 modules. The imports are
read from the source with ``ast``, so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "hiermio"
# bottom to top; the package's own top level (the public API, the CLI, the R bridge) is above all
STAGES = ["core", "data", "formula", "problem", "solve", "fitting", "workflow", "comparisons", "paper", ""]


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("hiermio",) + parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The hiermio modules ``name`` imports, wherever the import statement stands."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # "from .x import y": y may be a module itself
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else "")


def test_the_stages_cover_every_folder():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(STAGES) - {""}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "hiermio"))
def test_no_module_imports_a_higher_stage(module):
    higher = sorted(m for m in GRAPH[module] if _stage(m) > _stage(module) and m != "hiermio")
    assert not higher, f"{module} (stage {STAGES[_stage(module)] or 'top'}) imports higher stages: {higher}"


def test_no_import_circle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH[m]):
            if n == "hiermio":  # the package's own __init__ re-exports everything
                continue
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def test_no_folder_holds_more_than_15_modules():
    for folder in [PACKAGE, *(p for p in PACKAGE.iterdir() if p.is_dir())]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 15, f"{folder.name} holds {len(modules)} modules"


def test_the_layout_checker_sees_a_violation():
    # a module of the core that imported the fitting stage would be caught
    assert _stage("hiermio.core.control") < _stage("hiermio.fitting.api") < _stage("hiermio.cli")
    assert "hiermio.fitting.results" in GRAPH["hiermio.fitting.api"]


def test_the_readme_diagram_matches_the_tree():
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme[readme.index("## How the code is laid out"):]
    diagram = section[section.index("```") + 3:]
    diagram = diagram[: diagram.index("```")]
    listed: dict[str, set[str]] = {}
    folder = ""
    for line in diagram.splitlines():
        head = line.strip().split(" ")[0]
        if head.endswith("/"):
            folder = head[:-1]
        elif head.startswith("hiermio/"):
            folder = ""
        listed.setdefault(folder, set()).update(w.strip("(),") for w in line.split() if w.strip("(),").endswith(".py"))
    for stage in STAGES:
        here = PACKAGE / stage if stage else PACKAGE
        files = {p.name for p in here.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
        names = {n.split("/")[-1] for n in listed.get(stage, set())} - {"__init__.py"}
        assert names == files, f"README's diagram of {stage or 'hiermio/'} lists {sorted(names)}, the tree has {sorted(files)}"
