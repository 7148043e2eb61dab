"""The import rule (docs/architecture.md, "Layers"): no import cycle among edgebench modules, counting
function-level and TYPE_CHECKING imports; no import from a higher layer than the module's own, as the
architecture document lists them; an import inside a function only defers a heavy optional third-party
package, directly or through the edgebench module that imports it at its top."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import edgebench

# Third-party packages imported where they are used, not at a module's top, and why.
HEAVY = {
    "torch": "about 4 s to import: usage errors, config checks, reports and the CLI's help need none of it",
    "torchvision": "imports torch, and its model zoo",
    "torchao": "PT2E quantization for TFLite and ExecuTorch int8 only; about 14 s",
    "onnx": "1 s; only ONNX exports, taps and file checks read it",
    "onnxruntime": "only the onnxruntime runtime, ONNX taps and ONNX quantization",
    "onnxscript": "only the ONNX exporter",
    "coremltools": "about 30 s to import; only Core ML exports, runtimes and taps",
    "litert_torch": "about 20 s to import; only the TFLite export",
    "ai_edge_litert": "a native runtime: only the LiteRT runtime, taps and census",
    "executorch": "only ExecuTorch exports and its runtime",
    "prefect": "about 4 s; only the flows, the temporary server and artifacts need it",
    "pandas": "about 1 s; only reports and history",
    "sqlalchemy": "only the history store",
    "av": "native FFmpeg bindings: only video decoding",
    "qai_hub": "optional (AI Hub devices), and 2 s to import",
    "psutil": "optional: only stopping the processes `edgebench serve` started",
    "playwright": "a test tool",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted (a submodule when `from package import submodule`)
    line: int
    where: str  # module | function | type_checking


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """Every import statement of one module, resolved to module names, with where it sits."""
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = "function" if where == "module" else where
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = "type_checking"
            elif isinstance(child, ast.If) and ast.unparse(child.test) == "__name__ == '__main__'":
                continue  # runs only as a program (python -m), never when the module is imported
            if isinstance(child, ast.Import):
                found.extend(Import(name, a.name, child.lineno, where) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = name.split(".")[: len(name.split(".")) - (child.level - (1 if is_package else 0))]
                    base = ".".join(parts + ([base] if base else []))
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.append(Import(name, sub if sub in known else base, child.lineno, where))
            visit(child, inner)

    visit(ast.parse(path.read_text()), "module")
    return found


def graph(root: Path, package: str) -> tuple[dict[str, set[str]], list[Import]]:
    """Module -> the package modules it imports anywhere (and their parent packages, which Python runs first)."""
    known = modules(root, package)
    every = [i for name, path in known.items() for i in imports_of(name, path, known)]
    edges: dict[str, set[str]] = {name: set() for name in known}
    for i in every:
        parts = i.target.split(".")
        for n in range(1, len(parts) + 1):
            target = ".".join(parts[:n])
            if target in known and target != i.module:
                edges[i.module].add(target)
    return edges, every


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def heavy_at_import(edges_at_top: dict[str, set[str]], third_party: dict[str, set[str]], module: str) -> set[str]:
    """The HEAVY packages importing `module` brings in, through the imports at the top of it and of what it imports."""
    seen, todo, heavy = set(), [module], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        heavy |= third_party.get(m, set()) & set(HEAVY)
        todo += edges_at_top.get(m, ())
    return heavy


def lazy_without_reason(root: Path, package: str) -> list[str]:
    """Function-level imports that defer nothing heavy: a light third-party package, or an edgebench module whose
    own top imports reach no HEAVY package."""
    known = modules(root, package)
    _, every = graph(root, package)
    at_top: dict[str, set[str]] = {}
    third: dict[str, set[str]] = {}
    for i in every:
        if i.where != "module":
            continue
        if i.target.split(".")[0] == package:
            at_top.setdefault(i.module, set()).add(next(t for t in _prefixes(i.target)[::-1] if t in known))
        else:
            third.setdefault(i.module, set()).add(i.target.split(".")[0])
    bad = []
    for i in every:
        if i.where != "function":
            continue
        top = i.target.split(".")[0]
        if top == package:
            target = next(t for t in _prefixes(i.target)[::-1] if t in known)
            if not heavy_at_import(at_top, third, target):
                bad.append(f"{i.module}:{i.line} imports {target} inside a function, but it brings in nothing heavy")
        elif top not in HEAVY:
            bad.append(f"{i.module}:{i.line} imports {top} inside a function, but {top} is not heavy (HEAVY)")
    return bad


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def layers(doc: Path) -> list[set[str]]:
    """The layers of the architecture document, top first: the names before two spaces on each line of the
    fenced block under "## Layers"."""
    text = doc.read_text().split("## Layers", 1)[1]
    block = text.split("```", 2)[1]
    return [set(line.split("  ")[0].split()) for line in block.strip().splitlines()]


def upward(edges: dict[str, set[str]], stack: list[set[str]], package: str) -> list[str]:
    """Imports of a module from one in a higher layer, and modules in no layer. A layer names top-level modules
    and packages (`pipeline`, `parity`) or single modules of a package (`evaluation.dataset`): the longest
    name that covers a module decides its layer."""
    level = {name: i for i, names in enumerate(stack) for name in names}

    def layer(module: str) -> int | None:
        parts = module.split(".")[1:]
        covering = [".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in level]
        return level[covering[0]] if covering else None

    found = [f"{m} is in no layer" for m in edges if m != package and layer(m) is None]
    for m, targets in edges.items():
        for t in targets:
            if any(other.startswith(t + ".") for other in targets):
                continue  # a package run only as the parent of the module imported: that module's layer counts
            if package not in (m, t) and None not in (layer(m), layer(t)) and layer(t) < layer(m):
                found.append(f"{m} imports {t}, a layer above it")
    return sorted(set(found))


ROOT = Path(edgebench.__file__).resolve().parents[1]


def test_no_import_cycle_among_edgebench_modules():
    edges, _ = graph(ROOT, "edgebench")
    assert len(edges) > 50  # the walk saw the package
    assert cycles(edges) == []


def test_no_import_reaches_up_a_layer():
    edges, _ = graph(ROOT, "edgebench")
    stack = layers(ROOT / "docs" / "architecture.md")
    assert len(stack) > 5
    assert upward(edges, stack, "edgebench") == []
    flipped = [stack[-1], *stack[1:-1], stack[0]]  # negative control: the bottom layer put on top
    assert any("a layer above it" in problem for problem in upward(edges, flipped, "edgebench"))


def test_function_level_imports_only_defer_heavy_packages():
    assert lazy_without_reason(ROOT, "edgebench") == []


def test_a_planted_cycle_and_a_needless_lazy_import_are_found(tmp_path):
    """Negative control: a cycle closed only by a function-level import, one closed under TYPE_CHECKING, and a
    function-level import of a light module all fail the rule."""
    pkg = tmp_path / "plant"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from plant import b\n")
    (pkg / "b.py").write_text("def f():\n    from plant.a import g\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from plant.sub import d\n")
    (pkg / "sub" / "d.py").write_text("from . import c\n")
    (pkg / "e.py").write_text("import json\ndef f():\n    import torch\n    import pathlib\n    from plant import b\n")
    edges, _ = graph(tmp_path, "plant")
    assert cycles(edges) == [["plant.a", "plant.b"], ["plant.sub.c", "plant.sub.d"]]
    assert lazy_without_reason(tmp_path, "plant") == [
        "plant.b:2 imports plant.a inside a function, but it brings in nothing heavy",
        "plant.e:4 imports pathlib inside a function, but pathlib is not heavy (HEAVY)",
        "plant.e:5 imports plant.b inside a function, but it brings in nothing heavy",
    ]
