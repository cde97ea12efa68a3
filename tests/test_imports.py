"""The package's architecture: no import cycles, and every layer imports only from itself or
the layers below it (``import`` statements anywhere in a module count, function-level ones
included)."""

import ast
import importlib.util
import re
from pathlib import Path

import spikerl_jax

ROOT = Path(spikerl_jax.__file__).parent
# Layers, bottom up: a module may import from its own layer's package or from lower layers
# (the entry points at the top may import each other).
BASE = {
    "spikerl_jax.precision",
    "spikerl_jax.schema",
    "spikerl_jax.initializers",
    "spikerl_jax.envs.registry",
    "spikerl_jax.api_names",
    "spikerl_jax.version",
    "spikerl_jax.batching",
    "spikerl_jax.arguments",
}
LAYERS = [
    BASE,
    {"spikerl_jax.config"},
    {"spikerl_jax.sweep_spec", "spikerl_jax.processes"},
    {"spikerl_jax.pbt_spec"},
    {"spikerl_jax.snn", "spikerl_jax.envs"},
    {"spikerl_jax.rl"},
    {"spikerl_jax.reporting"},
    {"spikerl_jax.training"},
    {"spikerl_jax.export"},
    {"spikerl_jax", "spikerl_jax.api", "spikerl_jax.cli"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports (resolved to the deepest known module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("spikerl_jax") and name in known:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, known) - {name} for name, path in mods.items()}


def layer_of(module: str) -> tuple[int, str]:
    """``(layer index, the layer entry it belongs to)`` of a module (longest prefix)."""
    best = None
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            inside = module == entry or module.startswith(entry + ".")
            if inside and (best is None or len(entry) > len(best[1])):
                best = (index, entry)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_layers_import_only_downward():
    violations = []
    for module, targets in graph().items():
        level, entry = layer_of(module)
        for target in targets:
            t_level, t_entry = layer_of(target)
            sideways = t_level == level and t_entry != entry and level < len(LAYERS) - 1
            if t_level > level or sideways:
                violations.append(f"{module} (layer {level}) imports {target} (layer {t_level})")
    assert not violations, "\n".join(sorted(violations))


def test_the_walker_sees_function_level_imports(tmp_path):
    """The check can fail: a function-level import of a higher layer is reported."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from spikerl_jax.training.trainer import train\n")
    assert imports_of(source, set(modules())) == {"spikerl_jax.training.trainer"}
    assert importlib.util.find_spec("spikerl_jax.training.trainer") is not None


def test_the_public_api_exports_every_name_it_lists():
    import spikerl_jax.api as api

    assert [name for name in spikerl_jax.__all__ if not hasattr(api, name)] == []
    assert spikerl_jax.train is api.train and spikerl_jax.load_policy is api.load_policy


def test_td3_knows_no_actor_and_the_cli_no_argparse():
    """TD3 sees the actor only through the network factory; the command line is tyro's."""
    edges = graph()
    assert not {m for m in edges["spikerl_jax.rl.td3"] if m.startswith("spikerl_jax.snn")}
    for path in (ROOT / "cli").glob("*.py"):
        names = {
            a.name
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Import)
            for a in n.names
        }
        names |= {
            n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)
        }
        assert "argparse" not in names, path


# The layers that must work for every algorithm name none: they see one through
# ``rl.algorithm.Algorithm`` (and ``rl.algorithms``, which picks it by ``--algo``).
ALGORITHM_FREE = ("training", "reporting", "export")
ALGORITHM_NAME = re.compile(r"td3|ddpg|(?<![a-z])sac(?![a-z])", re.IGNORECASE)


def names_in_code(path: Path) -> set[str]:
    """The identifiers, imported modules and string constants of ``path`` (docstrings and
    comments left out: prose may name an algorithm)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found |= {node.name, node.asname or ""}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Constant) and id(node) not in docstrings:
            found.add(str(node.value))
    return found


def algorithm_names(path: Path) -> set[str]:
    return {name for name in names_in_code(path) if ALGORITHM_NAME.search(name)}


def test_the_shared_layers_name_no_algorithm():
    paths = [p for package in ALGORITHM_FREE for p in sorted((ROOT / package).rglob("*.py"))]
    paths += [ROOT / "sweep_spec.py", ROOT / "pbt_spec.py"]
    assert len(paths) > 20
    named = {str(p.relative_to(ROOT)): sorted(algorithm_names(p)) for p in paths}
    assert {p: n for p, n in named.items() if n} == {}


def test_the_algorithm_check_can_fail(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text(
        '"""TD3 in prose is fine."""\n'
        "from spikerl_jax.rl.td3 import make_td3\n"
        "def f(state, sac_alpha):\n"
        "    return state.ddpg, {'td3': 1}, 'sacrifice'\n"
    )
    assert algorithm_names(source) == {
        "spikerl_jax.rl.td3",
        "make_td3",
        "sac_alpha",
        "ddpg",
        "td3",
    }
