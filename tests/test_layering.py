"""Dependencies point one way: parts below models below training, the CLI and the hub; the core imports light."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_latent_ebm"
PARTS = {"priors", "decoders", "encoders", "learners", "langevin", "distributions", "layers", "registry",
         "class_priors", "validation"}
ABOVE_MODELS = {"training", "checkpointing", "evaluation", "cli", "pipelines"}


def group(module: str) -> str:
    """The layer of a module of the package, by its first name under hf_latent_ebm."""
    first = module.split(".")[1] if "." in module else ""
    if first in PARTS:
        return "part"
    if first.startswith(("configuration_", "modeling_")):
        return "model"
    return first


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import of the package's own modules, lazy ones included."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                found.append((module, ".".join(base + ([node.module] if node.module else []))))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hf_latent_ebm"):
                found.append((module, node.module))
    return found


def test_parts_import_no_config_model_or_anything_above():
    bad = [(source, target) for source, target in imports()
           if group(source) == "part" and group(target) not in ("part", "data", "utils", "")]
    assert not bad, bad


def test_models_import_nothing_above_them():
    # The hub's card writer is the one thing models reach up to (lazily, in save_pretrained); it imports no model.
    bad = [(source, target) for source, target in imports()
           if group(source) == "model" and group(target) in ABOVE_MODELS | {"chet"}]
    assert not bad, bad
    assert not [target for source, target in imports() if group(source) == "hub" and group(target) == "model"]


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
