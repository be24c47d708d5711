"""The house rules, checked on the source: layers import only downward, no loops, no module over
500 lines, no private names across modules, benchmarks stay out of the product, no sys.path edits."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO

PACKAGE = REPO / "synface"
#: lowest first; a module may import its own layer or any layer before it, never one after it.
#: models/ (backbones, checkpoints) sits below both evaluation, which loads trained models, and
#: training, which ends with an evaluation; api.py (the notebook's calls) is a client like the command
#: line, which may use it; cli/main.py dispatches and __main__ only runs it.
LAYERS = ["base", "render", "face", "generator", "data", "runs", "models", "eval", "train", "fitting", "analysis",
          "studies", "bench", "api", "cli", "__main__"]
LEVEL = {name: i for i, name in enumerate(LAYERS)}
#: the Streamlit client: app.py, its pages and their shared helpers (ui/)
CLIENT_FILES = [REPO / "app.py", *(REPO / "pages").glob("*.py"), *(REPO / "ui").glob("*.py")]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every synface import, type-checking blocks excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synface"):
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("synface")]
    return found


def test_layers_import_only_downward() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        layer = _layer(name)
        if layer not in LEVEL:
            continue
        for target, names, line in _imports(path):
            targets = [target] + [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for t in targets:
                t_layer = _layer(t)
                if t_layer in LEVEL and LEVEL[t_layer] > LEVEL[layer]:
                    wrong.append(f"{path.relative_to(REPO)}:{line} ({layer}) imports {t} ({t_layer})")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_every_layer_is_listed_on_its_own() -> None:
    """No two packages share a level: a merged pair would hide imports in both directions."""
    assert all(isinstance(name, str) for name in LAYERS) and len(set(LAYERS)) == len(LAYERS), LAYERS


def test_pages_holds_only_the_pages_the_app_lists() -> None:
    """Streamlit treats every file in pages/ as a page; helpers live in ui/."""
    tree = ast.parse((REPO / "app.py").read_text(encoding="utf-8"))
    listed = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
              and isinstance(node.value, str) and node.value.startswith("pages/") and node.value.endswith(".py")}
    present = {f"pages/{p.name}" for p in (REPO / "pages").glob("*.py")}
    assert present == listed, f"pages/ holds {sorted(present - listed)} that app.py does not list"


def test_every_module_sits_in_a_layer() -> None:
    stray = [n for n in _modules() if _layer(n) not in LEVEL and n != "synface"]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


def test_no_import_loops() -> None:
    modules = _modules()
    graph = {name: {t for target, names, _ in _imports(path)
                    for t in [target] + [f"{target}.{n}" for n in names] if t in modules and t != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import loop: " + " -> ".join(stack[stack.index(nxt):] + [nxt]) if nxt in stack
                                     else f"import loop through {nxt}")
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_module_over_500_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in [*PACKAGE.rglob("*.py"), *CLIENT_FILES]
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, long


def test_no_private_names_imported_from_other_modules() -> None:
    wrong = []
    for path in _modules().values():
        for target, names, line in _imports(path):
            wrong += [f"{path.relative_to(REPO)}:{line} imports {target}.{n}" for n in names
                      if n.startswith("_") and not n.startswith("__")]
    for path in CLIENT_FILES:
        for target, names, line in _imports(path):
            wrong += [f"{path.relative_to(REPO)}:{line} imports {target}.{n}" for n in names if n.startswith("_")]
    assert not wrong, "\n".join(wrong)


def test_only_bench_and_cli_import_the_benchmarks() -> None:
    wrong = []
    clients = {n: p for n, p in _modules().items() if _layer(n) not in ("bench", "cli")}
    clients |= {str(p.relative_to(REPO)): p for p in CLIENT_FILES}
    for path in clients.values():
        wrong += [f"{path.relative_to(REPO)}:{line} imports {target}" for target, _, line in _imports(path)
                  if target == "synface.bench" or target.startswith("synface.bench.")]
    assert not wrong, "\n".join(wrong)


def test_no_sys_path_edits_and_no_streamlit_in_the_library() -> None:
    for path in [*CLIENT_FILES, *PACKAGE.rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "sys.path.insert" not in text and "sys.path.append" not in text, path
    for path in PACKAGE.rglob("*.py"):
        assert "import streamlit" not in path.read_text(encoding="utf-8"), path


def test_the_library_validates_with_exceptions_not_asserts() -> None:
    """`python -O` strips asserts, and an AssertionError is a traceback, not a message: every check
    of an input (or of an invariant) raises a named exception instead."""
    found = [f"{path.relative_to(REPO)}:{node.lineno}" for path in PACKAGE.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Assert)]
    assert not found, "assert statements in synface/: " + ", ".join(found)


def test_each_file_of_a_run_or_a_synthetic_set_is_named_by_its_owner_only() -> None:
    """One typed owner per on-disk artefact: a run's eval.json and study.json (`Run`), a synthetic
    set's card (`SynthSet`). Any other module goes through the owner, so a change of layout is one edit."""
    owners = {'"eval.json"': "synface/runs/run.py", '"study.json"': "synface/runs/run.py",
              '"dataset.json"': "synface/data/synth_set.py"}
    for literal, owner in owners.items():
        named = sorted(str(p.relative_to(REPO)) for p in [*PACKAGE.rglob("*.py"), *CLIENT_FILES]
                       if literal in p.read_text(encoding="utf-8"))
        assert named == [owner], f"{literal} is named in {named}; only {owner} should name it"


def test_every_package_has_its_tests_folder() -> None:
    """tests/ mirrors the package: each synface/<pkg>/ has tests/<pkg>/ holding test modules, and each
    top-level module with behaviour of its own (api.py, generator.py) has tests/test_<name>.py."""
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    missing = [f"tests/{name}/" for name in packages if not list((REPO / "tests" / name).glob("test_*.py"))]
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    missing += [f"tests/test_{name}.py" for name in modules if not (REPO / "tests" / f"test_{name}.py").is_file()]
    assert not missing, f"packages without tests: {missing}"
