"""The layout is the architecture: rooms by role, arrows only downward, KerasTuner's
internals behind one door. These tests read the source (no TensorFlow import), so a change
that breaks a rule fails here in a second, with the offending line named."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom up: a module may import from its own layer and the layers below it.
LAYERS = [
    ("hypermodels", ["hypermodels"]),
    ("foundations", ["tuning", "tuning.errors", "tuning.stats", "tuning.plan", "tuning.data",
                     "tuning.kt_internals", "tuning.schedule", "tuning.config", "tuning.faults",
                     "tuning.output", "tuning.tfstartup"]),
    ("run directory", ["tuning.rundir"]),
    ("machine", ["tuning.machine"]),
    ("what a run shows", ["tuning.show"]),
    ("retraining", ["tuning.retrain"]),
    ("engine", ["tuning.engine"]),
    ("command line", ["tuning.cli"]),
    ("commands", ["tuning.search", "tuning.finalize", "tuning.ablate", "tuning.report"]),
]  # fmt: skip
ADAPTER = "tuning.kt_internals"
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 420


def modules() -> dict[str, Path]:
    found = {}
    for package in ("tuning", "hypermodels"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def layer_of(module: str) -> int:
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact = prefix in ("tuning",)
            if module == prefix or (not exact and module.startswith(prefix + ".")):
                best = index
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every project module a file imports, at any depth."""
    known, out = modules(), []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out.append((node.lineno, full if full in known else node.module))
    return [(n, m) for n, m in out if m.split(".")[0] in ("tuning", "hypermodels")]


def test_every_import_points_down_or_sideways():
    wrong = []
    for module, path in modules().items():
        mine = layer_of(module)
        for line, target in imports(path):
            if layer_of(target) > mine:
                above = f"{LAYERS[layer_of(target)][0]} is above {LAYERS[mine][0]}"
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target} ({above})")
    assert not wrong, "\n".join(wrong)


def test_hypermodels_is_a_leaf():
    for module, path in modules().items():
        if module.startswith("hypermodels"):
            assert not [t for _, t in imports(path) if t.startswith("tuning")], path


def test_the_engine_is_reached_through_its_public_face():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for module, path in modules().items() if not module.startswith("tuning.engine")
             for line, target in imports(path) if target.startswith("tuning.engine.")]  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = {m: {t for _, t in imports(p)} & set(modules()) for m, p in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_functions_and_modules_stay_short():
    long = []
    for path in modules().values():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {size}")
    assert not long, "\n".join(long)


# -- KerasTuner's internals behind one door ---------------------------------------------------
def keras_tuner_private_names() -> set[str]:
    """Every single-underscore name KerasTuner's own source defines or assigns (methods,
    attributes, module globals), read from the installed package."""
    spec = importlib.util.find_spec("keras_tuner")
    names = set()
    for path in Path(spec.origin).parent.rglob("*.py"):
        if "test" in path.name:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                name = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                name = node.attr
            if name and name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def own_private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines itself (a helper ``_run`` of our own class)."""
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("_"):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            own.add(node.attr)
    return own


def kt_violations(path: Path, private: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    subclasses_kt = any(
        isinstance(node, ast.ClassDef) for node in ast.walk(tree)
    ) and "keras_tuner" in path.read_text(encoding="utf-8")
    own = own_private_names(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_tuner.src"):
            found.append(f"{where} imports {node.module}")
        elif isinstance(node, ast.Import) and any(a.name.startswith("keras_tuner.src")
                                                  for a in node.names):  # fmt: skip
            found.append(f"{where} imports keras_tuner.src")
        elif isinstance(node, ast.Attribute) and node.attr == "__init__" and _rooted_at_kt(node):
            found.append(f"{where} calls a KerasTuner __init__ directly (skipping another)")
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Attribute) and isinstance(target.value, ast.Call)
            for target in node.targets
        ):
            found.append(f"{where} patches a module or object it got from a call")
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__":
            found.append(f"{where} copies an object's __dict__")
        elif isinstance(node, ast.Attribute) and node.attr in private:
            # reading a KerasTuner private name; one we define ourselves counts only in a
            # module that subclasses KerasTuner (overriding its private hook is touching it)
            if node.attr not in own or subclasses_kt:
                found.append(f"{where} touches KerasTuner's {node.attr}")
        elif isinstance(node, ast.FunctionDef) and node.name in private and subclasses_kt:
            found.append(f"{where} overrides KerasTuner's {node.name}")
    return found


def _rooted_at_kt(node: ast.Attribute) -> bool:
    value = node.value
    while isinstance(value, ast.Attribute):
        value = value.value
    return isinstance(value, ast.Name) and value.id == "keras_tuner"


def test_only_the_adapter_touches_keras_tuner_internals():
    private = keras_tuner_private_names()
    assert {"_random_values", "_retry_queue", "_build_and_fit_model"} <= private  # the reader works
    wrong = []
    for module, path in modules().items():
        if module != ADAPTER:
            wrong += kt_violations(path, private)
    assert not wrong, "\n".join(wrong)


def test_the_private_name_check_catches_a_reach_around(tmp_path):
    sneaky = ROOT / "tuning" / "_sneaky_probe.py"
    private = keras_tuner_private_names()
    cases = [
        "def f(oracle):\n    return oracle._retry_queue\n",
        "import keras_tuner\n\nclass T(keras_tuner.Hyperband):\n    def _try_build(self, hp):\n"
        "        return hp\n",
        "import keras_tuner\n\nclass T(keras_tuner.Hyperband):\n    def __init__(self):\n"
        "        keras_tuner.Tuner.__init__(self)\n",
        "from keras_tuner.src.distribute import oracle_client\n",
        "def f(module):\n    module().TIMEOUT = 1\n",
        "def f(a, b):\n    a.__dict__.update(b.__dict__)\n",
    ]
    try:
        for case in cases:
            sneaky.write_text(case)
            assert kt_violations(sneaky, private), case
    finally:
        sneaky.unlink()
