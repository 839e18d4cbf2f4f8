import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration, LatentEBMForTextGeneration, LatentEBMTextConfig
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.hub import push_folder, render_model_card
from hf_latent_ebm.tokenization import train_tokenizer

from .test_modeling_latent_ebm import TINY
from .test_text import CORPUS, TINY_TEXT


class FakeHfApi:
    """Records what a push would send to the Hub."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))

    def upload_folder(self, **kwargs):
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        uploaded = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                          and not p.relative_to(folder).parts[0].startswith(("checkpoints", ".")))
        self.calls.append(("upload_folder", {**kwargs, "files": uploaded}))
        return "https://huggingface.co/fake/commit/1"


def tiny_image_model():
    torch.manual_seed(0)
    return LatentEBMForImageGeneration(LatentEBMConfig(**TINY))


def refuse_to_run(model, monkeypatch):
    """Make every way of running the model's parts (sampling, the prior, the decoder) fail."""
    def refuse(*args, **kwargs):
        raise AssertionError("saving ran the model")

    monkeypatch.setattr(model, "sample", refuse)
    monkeypatch.setattr(model, "write_samples", refuse)
    monkeypatch.setattr(model.prior, "forward", refuse)
    monkeypatch.setattr(model.decoder, "forward", refuse)


def test_save_pretrained_writes_a_card_that_huggingface_hub_parses(tmp_path, monkeypatch):
    model = tiny_image_model()
    refuse_to_run(model, monkeypatch)  # saving is pure: config, weights and a card from what the model knows
    model.save_pretrained(tmp_path)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "hf-latent-ebm"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert "latent-ebm" in card.data.tags and card.data.license == "apache-2.0"
    assert "Intended use and limitations" in card.text and "28x28x1" in card.text
    assert "![samples]" not in card.text and not (tmp_path / "samples.png").exists()
    monkeypatch.undo()
    # Samples for the card only when asked: a grid of 16 beside the weights.
    model.write_card(tmp_path, with_samples=True)
    assert "![samples](samples.png)" in ModelCard.load(tmp_path / "README.md").text
    from PIL import Image

    assert Image.open(tmp_path / "samples.png").size == (4 * 30 + 2, 4 * 30 + 2)


def test_card_carries_results_command_and_samples(tmp_path):
    model = tiny_image_model()
    model.save_pretrained(tmp_path)
    model.write_card_samples(tmp_path)
    (tmp_path / "train_results.json").write_text(json.dumps(
        {"step": 5, "command": "hf-latent-ebm train --dataset mnist --output-dir x", "dataset": "mnist"}))
    (tmp_path / "eval_results.json").write_text(json.dumps({"metric": "fid", "fid": 12.345678, "dataset": "mnist",
                                                            "split": "test"}))
    cli_main(["card", str(tmp_path), "--repo-id", "org/lebm-mnist"])
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.eval_results[0].metric_type == "fid"
    assert card.data.eval_results[0].metric_value == pytest.approx(12.3457)
    assert card.data.datasets == ["mnist"]
    assert "hf-latent-ebm train --dataset mnist" in card.text
    assert "![samples](samples.png)" in card.text
    assert 'AutoModel.from_pretrained("org/lebm-mnist")' in card.text


def test_cli_card_writes_samples_only_with_the_flag(tmp_path):
    tiny_image_model().save_pretrained(tmp_path)
    cli_main(["card", str(tmp_path)])
    assert not (tmp_path / "samples.png").exists()
    cli_main(["card", str(tmp_path), "--with-samples"])
    assert (tmp_path / "samples.png").exists()
    assert "![samples](samples.png)" in ModelCard.load(tmp_path / "README.md").text


def test_text_card_and_unknown_folder(tmp_path):
    tokenizer = train_tokenizer(CORPUS, min_frequency=1, max_length=12)
    model = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer)}))
    model.set_tokenizer(tokenizer)
    model.save_pretrained(tmp_path / "text")
    assert not (tmp_path / "text" / "samples.txt").exists()
    model.write_card(tmp_path / "text", with_samples=True)
    text_card = ModelCard.load(tmp_path / "text" / "README.md")
    assert text_card.data.pipeline_tag == "text-generation"
    assert len((tmp_path / "text" / "samples.txt").read_text().splitlines()) == 8
    samples = (tmp_path / "text" / "samples.txt").read_text().splitlines()
    assert "```text\n" + "\n".join(samples) + "\n```" in text_card.text  # verbatim: <unk> stays visible
    assert "learned energy-based prior p(z)" in text_card.text and "sampled by 3-step short-run Langevin" in text_card.text
    # Each learner is described as what it is.
    for learner, prior_type, words in (("vae", "gaussian", "the VAE baseline"),
                                       ("vae_ebm", "ebm", "energy-based prior fitted to its aggregate posterior")):
        config = LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer), "learner": learner,
                                        "prior_type": prior_type})
        variant = LatentEBMForTextGeneration(config)
        variant.set_tokenizer(tokenizer)
        variant.save_pretrained(tmp_path / learner)
        assert words in ModelCard.load(tmp_path / learner / "README.md").text
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="no hf-latent-ebm model"):
        render_model_card(tmp_path / "other")


def test_push_sends_weights_config_and_card_but_not_checkpoints(tmp_path):
    tiny_image_model().save_pretrained(tmp_path)
    (tmp_path / "checkpoints" / "step-1").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step-1" / "training_state.pt").write_bytes(b"x")
    api = FakeHfApi()
    push_folder(tmp_path, "org/lebm", private=True, api=api)
    (create_name, create), (upload_name, upload) = api.calls
    assert create_name == "create_repo" and create == {"repo_id": "org/lebm", "private": True, "exist_ok": True}
    assert upload_name == "upload_folder" and upload["repo_id"] == "org/lebm"
    assert {"README.md", "config.json", "model.safetensors"} <= set(upload["files"])
    assert "checkpoints/*" in upload["ignore_patterns"]
    with pytest.raises(OSError, match="not a saved model folder"):
        push_folder(tmp_path / "checkpoints", "org/x", api=api)


def test_model_push_to_hub_uses_the_injected_api(tmp_path, monkeypatch):
    api = FakeHfApi()
    model = tiny_image_model()
    refuse_to_run(model, monkeypatch)
    model.push_to_hub("org/lebm-direct", api=api)
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder"]
    assert {"README.md", "config.json", "model.safetensors"} <= set(api.calls[1][1]["files"])
    assert "samples.png" not in api.calls[1][1]["files"]
    monkeypatch.undo()
    model.push_to_hub("org/lebm-direct", api=api, with_samples=True)  # asked for: a grid for the card
    assert "samples.png" in api.calls[3][1]["files"]


def test_cli_push_reports_errors_cleanly(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["push", str(tmp_path / "missing"), "--repo-id", "org/x"])
    assert "not a saved model folder" in capsys.readouterr().err


def fake_hub_cache(hf_home, repo_id, folder):
    """Lay out a model folder the way huggingface_hub caches a download (refs/main -> snapshots/<sha>)."""
    import shutil

    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(folder, repo / "snapshots" / sha)


def test_from_pretrained_by_hub_id_from_the_offline_cache(tmp_path, monkeypatch):
    hf_home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_image_model()
    model.save_pretrained(tmp_path / "saved")
    fake_hub_cache(hf_home, "org/lebm-cached", tmp_path / "saved")
    tokenizer = train_tokenizer(CORPUS, min_frequency=1, max_length=12)
    text_model = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer)}))
    text_model.set_tokenizer(tokenizer)
    text_model.save_pretrained(tmp_path / "saved_text")
    fake_hub_cache(hf_home, "org/lebm-text", tmp_path / "saved_text")
    # huggingface_hub reads HF_HOME when imported; point its constants at the fake cache for this test.
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = AutoModel.from_pretrained("org/lebm-cached")
    assert torch.equal(loaded.decoder.layers[0].weight, model.decoder.layers[0].weight)
    loaded_text = AutoModel.from_pretrained("org/lebm-text")
    assert loaded_text.tokenizer is not None and len(loaded_text.tokenizer) == len(tokenizer)
