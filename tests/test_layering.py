"""Dependencies point one way: parts below models below training, the CLI and the hub; the core imports light."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_latent_ebm"
PARTS = {"priors", "decoders", "encoders", "learners", "samplers", "distributions", "layers", "registry",
         "class_priors", "validation", "modalities", "model_kinds", "tokenization"}
ABOVE_MODELS = {"training", "checkpointing", "evaluation", "cli", "pipelines", "molecule_design"}


def group(module: str) -> str:
    """The layer of a module of the package, by its first name under hf_latent_ebm."""
    first = module.split(".")[1] if "." in module else ""
    if first in PARTS:
        return "part"
    if first.startswith(("configuration_", "modeling_")):
        return "model"
    return first


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package under its own name, for its __init__)."""
    return {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
            for path in PACKAGE.rglob("*.py")}


def import_edges() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of the package's own modules, lazy ones (inside
    functions) included: a lazy import still makes the importer depend on what it imports. `from package import
    name` counts as an import of the module `package.name` when there is one, else of the package itself. The
    implicit import of a module's parent packages is left out (as import-linter leaves it out): every submodule
    would otherwise depend on its package's `__init__`, which imports the submodules."""
    known = modules()

    def existing(name: str) -> str:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    found = []
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                elif (node.module or "").split(".")[0] == PACKAGE.name:
                    base = node.module
                else:
                    continue
                targets = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else existing(base)
                           for alias in node.names}
            elif isinstance(node, ast.Import):
                targets = {existing(alias.name) for alias in node.names
                           if alias.name.split(".")[0] == PACKAGE.name}
            else:
                continue
            found += [(module, target, node.lineno) for target in sorted(targets) if target != module]
    return found


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import of the package's own modules, lazy ones included."""
    return [(source, target) for source, target, _ in import_edges()]


def test_parts_import_no_config_model_or_anything_above():
    bad = [(source, target) for source, target in imports()
           if group(source) == "part" and group(target) not in ("part", "utils")]
    assert not bad, bad


def test_models_import_nothing_above_them():
    # The hub's card writer is the one thing models reach up to (modeling_utils, lazily, to render a saved folder's
    # card); it imports no model.
    bad = [(source, target) for source, target in imports()
           if group(source) == "model" and group(target) in ABOVE_MODELS | {"chet"}]
    assert not bad, bad
    assert not [target for source, target in imports() if group(source) == "hub" and group(target) == "model"]


def test_samplers_import_no_other_part():
    # The sampler sits under every other part: priors run their chain through it and learners are handed it, so it
    # knows only potentials (callables) and the foundation below the parts.
    bad = [(source, target) for source, target in imports()
           if source.startswith("hf_latent_ebm.samplers") and group(target) == "part"
           and not target.startswith(("hf_latent_ebm.samplers", "hf_latent_ebm.registry"))]
    assert not bad, bad


def test_nothing_below_chet_imports_it():
    bad = [(source, target) for source, target in imports()
           if group(target) == "chet" and group(source) not in ("chet", "cli", "hub", "")]
    assert not bad, bad


def test_the_core_imports_only_torch_and_transformers():
    heavy = ["datasets", "gradio", "evaluate", "matplotlib", "sklearn", "rdkit", "pandas"]
    code = ("import sys, hf_latent_ebm; import hf_latent_ebm.modeling_latent_ebm_classification; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]", output


# The layers contract, bottom to top: a module imports modules of its own layer or of layers below it, never above
# (lazy imports included). A module's area is its first name under hf_latent_ebm ("models" for configuration_* and
# modeling_*; chet's modules one by one, "" for the package's own __init__).
LAYERS = [
    ("foundation", {"registry", "validation", "distributions", "layers", "utils", "tokenization", "class_priors",
                    "model_kinds"}),
    ("parts", {"priors", "decoders", "encoders", "learners", "samplers", "modalities"}),
    ("data and metrics", {"data", "metrics"}),
    ("models", {"models", "chet", "chet.cohort", "chet.graph", "chet.configuration_chet", "chet.modeling_chet", "chet.scoring",
                "chet.baselines", "chet.reference", "chet.explain", "chet.synthetic", "chet.icd9_names"}),
    ("training, evaluation and hub", {"training", "checkpointing", "evaluation", "pipelines", "hub",
                                      "chet.training", "molecule_design"}),
    ("entry points", {"cli", "chet.cli", ""}),
]
# The one import that climbs: `save_pretrained` renders the model card with the hub's card writer (lazily). The hub
# imports only the model-kind table and the priors' registry, neither of which imports a model, so this makes no
# cycle.
ALLOWED_UPWARD = {("hf_latent_ebm.modeling_utils", "hf_latent_ebm.hub")}
LATENT_EBM_AREAS = {"models", "priors", "decoders", "encoders", "learners", "samplers"}


def area(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if parts[0].startswith(("configuration_", "modeling_")):
        return "models"
    return ".".join(parts[:2]) if parts[0] == "chet" and len(parts) > 1 else parts[0]


def layer(module: str) -> int:
    found = [index for index, (_, areas) in enumerate(LAYERS) if area(module) in areas]
    assert found, f"{module} (area {area(module)!r}) is in no layer of tests/test_layering.py: give it one"
    return found[0]


def test_no_module_imports_a_layer_above_it():
    bad = [f"{source} ({LAYERS[layer(source)][0]}) imports {target} ({LAYERS[layer(target)][0]}), line {line}"
           for source, target, line in import_edges()
           if layer(source) < layer(target) and (source, target) not in ALLOWED_UPWARD]
    assert not bad, "\n".join(bad)


def test_the_imports_that_used_to_climb_are_gone():
    edges = imports()
    assert not [(s, t) for s, t in edges if area(s) == "data" and area(t).startswith("chet")]
    assert not [(s, t) for s, t in edges if area(s) in ("learners", "priors", "decoders", "encoders")
                and area(t) == "data"]
    assert ("hf_latent_ebm.chet.modeling_chet", "hf_latent_ebm.chet.training") not in edges
    # Chet is its own family: it shares checkpointing, cards, metrics and data loading, not the latent-EBM code.
    assert not [(s, t) for s, t in edges if area(s).startswith("chet") and area(t) in LATENT_EBM_AREAS
                and t != "hf_latent_ebm.modeling_utils"]


def import_cycles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    graph: dict[str, list[str]] = {}
    for source, target, _ in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter = counter + 1
        stack.append(root), on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter = counter + 1
                    stack.append(successor), on_stack.add(successor)
                    work.append((successor, iter(graph[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_no_import_cycles():
    edges = import_edges()
    cycles = import_cycles(edges)
    described = ["  ".join(f"{s}:{line} -> {t}" for s, t, line in edges if s in cycle and t in cycle)
                 for cycle in cycles]
    assert not cycles, "\n".join(described)


def test_the_cycle_check_finds_a_cycle():
    edges = [("a", "b", 1), ("b", "c", 1), ("c", "a", 1), ("c", "d", 1), ("d", "d2", 1)]
    assert import_cycles(edges) == [["a", "b", "c"]]
    assert import_cycles(edges[1:]) == []
