"""Pure save and load: configs keep the values they are given (validators check, they do not rewrite), saved configs
load equal, and loading fails with a ValueError naming the file for a damaged tokenizer or weights that do not fit.
(Every latent-EBM variant also gets `ModelTesterMixin`'s save-runs-nothing, unknown-part and shape-mismatch tests.)"""

import ast
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_latent_ebm import LatentEBMForTextGeneration, LatentEBMMultimodalConfig, LatentEBMTextConfig
from hf_latent_ebm.configuration_latent_ebm import convert_legacy_config
from hf_latent_ebm.chet import ChetConfig, ChetForHealthEventPrediction
from hf_latent_ebm.tokenization import train_tokenizer

from .test_multimodal import TINY as TINY_MULTIMODAL
from .test_multimodal import tiny_modalities
from .test_text import CORPUS, TINY_TEXT

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MODULES = sorted((ROOT / "hf_latent_ebm").glob("configuration_*.py")) + \
    [ROOT / "hf_latent_ebm" / "chet" / "configuration_chet.py"]
# Fields a validator still fills in, and why (none).
STILL_FILLED = set()
SAVED_MODELS = sorted(path.parent for path in ROOT.glob("spaces/*/default_model/config.json")) + \
    sorted(path.parent for path in ROOT.glob("spaces/*/models/*/config.json"))


def test_validators_do_not_assign_to_the_config():
    assigned = set()
    for path in CONFIG_MODULES:
        for cls in ast.walk(ast.parse(path.read_text())):
            if not isinstance(cls, ast.ClassDef):
                continue
            for method in cls.body:
                if isinstance(method, ast.FunctionDef) and method.name.startswith("validate"):
                    for node in ast.walk(method):
                        targets = node.targets if isinstance(node, ast.Assign) else \
                            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
                        assigned |= {(cls.name, target.attr) for target in targets
                                     if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                                     and target.value.id == "self"}
    assert assigned <= STILL_FILLED, sorted(assigned - STILL_FILLED)


def test_chet_config_keeps_a_schedule_of_none_and_resolves_it_at_use(tmp_path):
    given = dict(task="heart_failure", code_names=["401.9", "428.0"], learning_rate_schedule=None)
    config = ChetConfig(**given)
    assert config.learning_rate_schedule is None and config.to_dict()["learning_rate_schedule"] is None
    # The paper's schedule for the task, from the task: 0.01, then 1e-3 at epoch 2, 1e-4 at 3, 1e-5 at 20.
    assert [config.learning_rate_at(epoch) for epoch in (0, 1, 2, 3, 19, 20)] == \
        [0.01, 0.01, 0.001, 0.0001, 0.0001, 0.00001]
    assert ChetConfig().learning_rate_at(20) == 0.001 and ChetConfig().effective_dropout == 0.45
    assert config.effective_dropout == 0.0
    config.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text()).get("learning_rate_schedule") is None
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.learning_rate_schedule is None and loaded.learning_rate_at(3) == 0.0001
    explicit = ChetConfig(learning_rate_schedule=[[0, 0.1], [5, 0.05]])
    assert explicit.learning_rate_schedule == [[0, 0.1], [5, 0.05]] and explicit.learning_rate_at(7) == 0.05
    with pytest.raises(ValueError, match="learning_rate_schedule"):
        ChetConfig(learning_rate_schedule=[[5, 0.01]])


def test_multimodal_config_keeps_its_modalities_and_order_as_given(tmp_path):
    modalities = tiny_modalities()
    reordered = {name: modalities[name] for name in ("right", "caption", "left")}  # not alphabetical
    config = LatentEBMMultimodalConfig(**TINY_MULTIMODAL, modalities=reordered)
    assert config.modality_order is None and config.modalities == reordered
    assert list(config.modalities) == ["right", "caption", "left"]
    assert config.modality_names == ("right", "caption", "left")
    # config.json sorts its keys: the order travels as modality_order and comes back on loading.
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["modality_order"] == ["right", "caption", "left"]
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert loaded.modality_names == config.modality_names and list(loaded.modalities) == list(reordered)
    assert {k: v for k, v in loaded.to_dict().items() if k != "_name_or_path"} == \
        {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}
    assert LatentEBMMultimodalConfig(**TINY_MULTIMODAL, modalities=reordered,
                                     modality_order=["right", "caption", "left"]).modalities == reordered
    with pytest.raises(ValueError, match="modality_order"):
        LatentEBMMultimodalConfig(**TINY_MULTIMODAL, modalities=reordered, modality_order=["left", "right", "caption"])


@pytest.mark.parametrize("folder", SAVED_MODELS, ids=lambda folder: str(folder.relative_to(ROOT)))
def test_saved_configs_load_equal_and_save_back_the_same(folder, tmp_path):
    config = AutoConfig.from_pretrained(folder)
    # Files from before the parts' sub-configs are read through the one documented conversion (issue 33, item 7).
    saved = convert_legacy_config(json.loads((folder / "config.json").read_text()))
    loaded = json.loads(config.to_json_string(use_diff=False))  # as JSON writes it: id2label's keys are strings
    # Every value in the (converted) file is the loaded config's (nothing else filled in or rewritten on the way).
    changed = {key: (value, loaded.get(key)) for key, value in saved.items()
               if key not in ("transformers_version", "_name_or_path") and loaded.get(key) != value}
    assert not changed, changed
    config.save_pretrained(tmp_path)
    again = json.loads(AutoConfig.from_pretrained(tmp_path).to_json_string(use_diff=False))
    assert {k: v for k, v in again.items() if k != "_name_or_path"} == \
        {k: v for k, v in loaded.items() if k != "_name_or_path"}


@pytest.fixture(scope="module")
def saved_text_model(tmp_path_factory):
    tokenizer = train_tokenizer(CORPUS, min_frequency=1, max_length=12)
    model = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer)}))
    model.set_tokenizer(tokenizer)
    folder = tmp_path_factory.mktemp("text")
    model.save_pretrained(folder, write_card=False)
    return folder


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_a_damaged_tokenizer_file_is_a_value_error_naming_it(saved_text_model, tmp_path, name):
    folder = tmp_path / "model"
    shutil.copytree(saved_text_model, folder)
    (folder / name).write_text('{"model": {"type": "BPE", "vocab": ')  # cut short
    with pytest.raises(ValueError, match=re.escape(str(folder / name))):
        AutoModel.from_pretrained(folder)
    with pytest.raises(ValueError, match=re.escape(str(folder / name))):
        LatentEBMForTextGeneration.from_pretrained(folder)


def test_a_tokenizer_that_does_not_fit_is_a_value_error_naming_the_file(saved_text_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved_text_model, folder)
    train_tokenizer(CORPUS + ["an entirely new sentence with words"], min_frequency=1).save_pretrained(folder)
    with pytest.raises(ValueError, match=r"(?s)tokenizer\.json.*does not match the model"):
        AutoModel.from_pretrained(folder)


def test_a_folder_without_a_tokenizer_loads_without_one(saved_text_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved_text_model, folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    assert AutoModel.from_pretrained(folder).tokenizer is None
    assert AutoModel.from_pretrained(saved_text_model).tokenizer is not None


def test_chet_weights_that_do_not_fit_the_config_name_the_file_and_field(tmp_path):
    torch.manual_seed(0)
    model = ChetForHealthEventPrediction(ChetConfig(code_names=["250.00", "401.9", "428.0"], hidden_dim=12,
                                                    code_embedding_dim=8, graph_dim=8))
    model.save_pretrained(tmp_path, write_card=False)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_dim"] = 10
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"(?s){re.escape(str(tmp_path / 'model.safetensors'))}.*hidden_dim=10"):
        AutoModel.from_pretrained(tmp_path)
