"""The hierarchical (multi-layer) prior of Cui, Wu & Han 2023 (issue 34, item 1): its density, its layers, learning
by the maximum-likelihood learner, save and reload, and errors naming the layers."""

import math

import pytest
import torch
from transformers import AutoModel

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.decoders import LadderImageDecoder
from hf_latent_ebm.encoders import LadderImageEncoder
from hf_latent_ebm.priors import PRIORS, HierarchicalPrior, HierarchicalPriorConfig
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

from hf_latent_ebm.samplers import LangevinDivergenceError
from hf_latent_ebm.utils import merge_config_kwargs

from .test_modeling_latent_ebm import TINY, ImageModelTester
from .test_training import toy_images

# TINY's latent_dim 4 as two layers of 2; small MLPs.
HIERARCHICAL = dict({key: value for key, value in TINY.items() if key != "energy_hidden_dim"}, latent_dim=6,
                    prior_type="hierarchical",
                    prior_config={"layer_sizes": [4, 2], "hidden_dim": 8, "conditional_hidden_dim": 8})


def prior(energy="layerwise", layer_sizes=(3, 2, 2), seed=0):
    torch.manual_seed(seed)
    config = HierarchicalPriorConfig(layer_sizes=list(layer_sizes), energy=energy, hidden_dim=8,
                                     conditional_hidden_dim=8)
    return HierarchicalPrior.from_config(config, latent_dim=sum(layer_sizes))


def normal_log_density(values, mean, std):
    return (-0.5 * ((values - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(dim=-1)


@pytest.mark.parametrize("energy", ["layerwise", "joint"])
def test_the_potential_is_the_joint_density_written_out(energy):
    """U(z) = -log p(z) + log Z: the tilt plus the top-down Gaussian chain, whatever the split into E and p0."""
    model = prior(energy).double()
    latents = torch.randn(5, 7, dtype=torch.float64)
    z1, z2, z3 = latents.split([3, 2, 2], dim=1)
    by_hand = model.tilt_energy(latents)
    for lower, upper, index in ((z1, z2, 0), (z2, z3, 1)):
        mean, log_std = model.links[index](upper).chunk(2, dim=-1)
        by_hand = by_hand - normal_log_density(lower, mean, log_std.exp() + model.min_std)
    by_hand = by_hand - normal_log_density(z3, torch.zeros_like(z3), torch.ones_like(z3))
    # Equal up to one constant (the potential drops p0's normaliser, as every prior's does).
    offset = model.potential(latents) - by_hand
    torch.testing.assert_close(offset, torch.full_like(offset, offset[0].item()))
    assert offset[0].item() == pytest.approx(-0.5 * math.log(2 * math.pi) * 7)


def test_layers_split_in_order_and_the_energies_follow_the_config():
    layerwise, joint = prior("layerwise"), prior("joint")
    assert len(layerwise.energies) == 3 and len(joint.energies) == 1 and len(layerwise.links) == 2
    latents = torch.arange(14.0).view(2, 7)
    layers = layerwise.split(latents)
    assert [layer.shape[1] for layer in layers] == [3, 2, 2] and torch.equal(torch.cat(layers, dim=1), latents)
    # A layer-wise energy sees each layer alone: changing the top layer leaves the other terms' sum as it was.
    moved = latents.clone()
    moved[:, 5:] += 1.0
    change = layerwise.tilt_energy(moved) - layerwise.tilt_energy(latents)
    expected = (layerwise.energies[2](moved[:, 5:]) - layerwise.energies[2](latents[:, 5:])).squeeze(-1)
    torch.testing.assert_close(change, expected)


def test_registered_with_its_config_and_described_on_cards():
    assert PRIORS.get("hierarchical") is HierarchicalPrior and PRIORS.config_class("hierarchical") is \
        HierarchicalPriorConfig
    text = HierarchicalPrior.describe(HierarchicalPriorConfig(layer_sizes=[4, 2]), None)
    assert "2-layer joint energy-based prior" in text and "[4, 2]" in text


def test_mle_trains_the_links_and_the_energies_then_saves_and_reloads(tmp_path):
    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**HIERARCHICAL))
    before = {name: value.clone() for name, value in model.prior.state_dict().items()}
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=3, batch_size=8, seed=3, sample_every=0,
                             checkpoint_every=0, log_every=1, num_grid_samples=4)
    trainer = LatentEBMTrainer(model, toy_images(), args)
    trainer.train()
    assert all(math.isfinite(value) for record in trainer.history for value in record.values())
    after = model.prior.state_dict()
    # The contrastive loss reaches the Gaussian links as well as the energies.
    assert not torch.equal(before["links.0.0.weight"], after["links.0.0.weight"])
    assert not torch.equal(before["energies.1.0.weight"], after["energies.1.0.weight"])
    model.eval()
    loaded = AutoModel.from_pretrained(tmp_path / "run").eval()
    assert isinstance(loaded.prior, HierarchicalPrior) and loaded.prior.layer_sizes == [4, 2]
    torch.testing.assert_close(loaded.sample_latents(4, torch.Generator().manual_seed(1)),
                               model.sample_latents(4, torch.Generator().manual_seed(1)))


def test_bad_layer_settings_name_the_layers():
    with pytest.raises(ValueError, match=r"layer_sizes \[4, 4\] sum to 8, but the model's latent_dim is 6"):
        LatentEBMForImageGeneration(LatentEBMConfig(**{**HIERARCHICAL, "prior_config": {"layer_sizes": [4, 4]}}))
    with pytest.raises(ValueError, match="(?s)prior_config: .*layer_sizes must list >= 2 layers"):
        LatentEBMConfig(**{**HIERARCHICAL, "prior_config": {"layer_sizes": [6]}})
    with pytest.raises(ValueError, match="(?s)prior_config: .*energy must be one of"):
        LatentEBMConfig(**{**HIERARCHICAL, "prior_config": {"layer_sizes": [4, 2], "energy": "per-pixel"}})
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 7\) \(layers \[3, 2, 2\]\)"):
        prior().split(torch.zeros(2, 6))


def test_resample_layer_redraws_one_layer_and_keeps_the_others():
    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**HIERARCHICAL)).eval()
    latents = model.sample_latents(5, torch.Generator().manual_seed(0))
    for layer, (start, end) in ((1, (0, 4)), (2, (4, 6))):
        redrawn = model.resample_layer(latents, layer, torch.Generator().manual_seed(1))
        kept = [i for i in range(6) if not start <= i < end]
        assert torch.equal(redrawn[:, kept], latents[:, kept])
        assert not torch.allclose(redrawn[:, start:end], latents[:, start:end])
        torch.testing.assert_close(redrawn, model.resample_layer(latents, layer, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match=r"layer must be an int in 1\.\.2 \(1 is next to x, 2 the top\), got 3"):
        model.resample_layer(latents, 3)
    with pytest.raises(ValueError, match=r"latents must have shape \(batch, 6\) \(layers \[4, 2\]\), got \(5, 4\)"):
        model.resample_layer(latents[:, :4], 1)
    flat = LatentEBMForImageGeneration(LatentEBMConfig(**TINY))
    with pytest.raises(ValueError, match="resample_layer needs a prior with layers"):
        flat.resample_layer(torch.zeros(2, 4), 1)


LADDER = dict(HIERARCHICAL, decoder_type="ladder", decoder_config={"layer_sizes": [4, 2], "hidden_dim": 8})


def test_the_ladder_decoder_reads_every_layer_and_trains_with_the_hierarchical_prior(tmp_path):
    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**LADDER))
    assert isinstance(model.decoder, LadderImageDecoder) and model.decoder.layer_sizes == [4, 2]
    latents = torch.randn(3, 6)
    with torch.no_grad():
        images = model.decoder.decode(latents)
        assert images.shape == (3, 1, 28, 28) and float(images.abs().max()) <= 1
        for coordinates in (slice(0, 4), slice(4, 6)):  # the bottom and the top layer both reach x
            moved = latents.clone()
            moved[:, coordinates] += 1.0
            assert not torch.allclose(model.decoder.decode(moved), images)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, batch_size=8, seed=3, sample_every=0,
                             checkpoint_every=0, log_every=1, num_grid_samples=4)
    trainer = LatentEBMTrainer(model, toy_images(), args)
    trainer.train()
    assert all(math.isfinite(value) for record in trainer.history for value in record.values())
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    model.eval()
    assert torch.equal(loaded.sample(2, torch.Generator().manual_seed(4)),
                       model.sample(2, torch.Generator().manual_seed(4)))


def test_the_decoder_and_prior_layers_must_agree():
    with pytest.raises(ValueError, match=r"decoder_config.layer_sizes \[3, 3\] must equal prior_config.layer_sizes "
                                         r"\[4, 2\]"):
        LatentEBMConfig(**{**LADDER, "decoder_config": {"layer_sizes": [3, 3]}})
    with pytest.raises(ValueError, match=r"decoder_config.layer_sizes \[4, 4\] sum to 8, but the model's latent_dim "
                                         r"is 6"):
        LatentEBMForImageGeneration(LatentEBMConfig(**{**LADDER, "prior_type": "gaussian", "prior_config": {},
                                                       "decoder_config": {"layer_sizes": [4, 4]}}))


def test_the_variational_scheme_trains_with_the_ladder_encoder(tmp_path):
    """ICCV 2023's joint training: the ELBO with the hierarchical EBM prior (learner "vae_ebm") and a bottom-up
    ladder q(z_1, .., z_L | x)."""
    torch.manual_seed(0)
    config = LatentEBMConfig(**LADDER, learner="vae_ebm", encoder_type="ladder",
                             encoder_config={"layer_sizes": [4, 2], "hidden_dim": 8})
    model = LatentEBMForImageGeneration(config)
    assert isinstance(model.encoder, LadderImageEncoder)
    mean, log_variance = model.encoder(toy_images(3))
    assert mean.shape == log_variance.shape == (3, 6)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, batch_size=8, seed=3, sample_every=0,
                             checkpoint_every=0, log_every=1, num_grid_samples=4)
    trainer = LatentEBMTrainer(model, toy_images(), args)
    trainer.train()
    assert {"decoder_loss", "kl_loss", "energy_loss"} <= set(trainer.history[-1])
    assert all(math.isfinite(value) for record in trainer.history for value in record.values())
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encoder(toy_images(2))[0], model.encoder(toy_images(2))[0])
    with pytest.raises(ValueError, match=r"encoder_config.layer_sizes \[2, 4\] must equal prior_config.layer_sizes"):
        LatentEBMConfig(**{**LADDER, "learner": "vae_ebm", "encoder_type": "ladder",
                           "encoder_config": {"layer_sizes": [2, 4]}})


def test_sample_grids_show_one_row_per_layer(tmp_path):
    from PIL import Image

    from hf_latent_ebm.cli import main as cli_main

    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**LADDER)).eval()
    rows = model.prior.layer_sweep(model.sample_latents(3, torch.Generator().manual_seed(0)), model.prior_sampler(),
                                   torch.Generator().manual_seed(1))
    assert rows.shape == (3, 3, 6)  # the samples, then the top layer (coordinates 4:6) and the bottom one redrawn
    assert torch.equal(rows[1][:, :4], rows[0][:, :4]) and torch.equal(rows[2][:, 4:], rows[0][:, 4:])
    model.save_pretrained(tmp_path / "model")
    cli_main(["sample", "--model", str(tmp_path / "model"), "--num-samples", "4", "--output",
              str(tmp_path / "grid.png"), "--seed", "0"])
    width, height = Image.open(tmp_path / "grid.png").size
    assert (width, height) == (4 * 30 + 2, 3 * 30 + 2)  # 4 columns; the samples and a row per layer


def test_the_preset_and_the_cli_task(tmp_path):
    from hf_latent_ebm.cli import main as cli_main

    from .test_training import write_image_folder

    config = LatentEBMConfig.hierarchical(layer_sizes=[3, 2, 2], energy="joint", variational=True)
    assert config.latent_dim == 7 and config.learner == "vae_ebm" and config.encoder_type == "ladder"
    assert config.part_config("prior").layer_sizes == config.part_arguments("decoder")["layer_sizes"] == [3, 2, 2]
    folder = tmp_path / "images"
    write_image_folder(folder)
    cli_main(["train", "--task", "hierarchical", "--dataset", str(folder), "--output-dir", str(tmp_path / "run"),
              "--max-steps", "2", "--batch-size", "4", "--sample-every", "0", "--checkpoint-every", "0",
              "--config-overrides", '{"layer_sizes": [4, 2], "decoder_config.base_channels": 4, '
                                    '"sampler_config": {"prior_steps": 2, "posterior_steps": 2}}'])
    model = AutoModel.from_pretrained(tmp_path / "run")
    assert model.config.prior_type == "hierarchical" and model.prior.layer_sizes == [4, 2]
    assert isinstance(model.decoder, LadderImageDecoder)


def test_layer_identity_changes_count_the_samples_whose_class_a_redrawn_layer_changes():
    from hf_latent_ebm.evaluation import layer_identity_changes

    torch.manual_seed(0)
    model = LatentEBMForImageGeneration(LatentEBMConfig(**HIERARCHICAL)).eval()
    constant = layer_identity_changes(model, lambda images: torch.zeros(len(images), dtype=torch.long), 16)
    assert constant == {1: 0.0, 2: 0.0}
    # A "class" that is the image itself: any redrawn layer changes it.
    fingerprint = layer_identity_changes(model, lambda images: (images.sum(dim=(1, 2, 3)) * 1e4).long(), 16)
    assert list(fingerprint) == [1, 2] and all(share > 0.9 for share in fingerprint.values())


class TestHierarchicalLadderMLE(ImageModelTester):
    """The shared model checks (config and save/load round trips, determinism, shapes, bad inputs, optimizer
    groups) on the hierarchical prior with the ladder generator, learned by maximum likelihood (CVPR 2023)."""

    bad_config_overrides = ImageModelTester.bad_config_overrides + [
        {"prior_config": {"layer_sizes": [4, 3]}},  # sums to 7, not latent_dim 6
        {"decoder_config": {"layer_sizes": [3, 3]}},  # disagrees with the prior's [4, 2]
        {"prior_config": {"energy": "per-pixel"}},
        {"prior_config": {"min_std": 0.0}},
    ]

    def get_config(self, **overrides):
        return LatentEBMConfig(**merge_config_kwargs(LADDER, overrides))

    def misfit_config(self, config):
        # One more dimension in the bottom layer, everywhere the layers are named, so the config itself is valid.
        config["latent_dim"] += 1
        for part in ("prior_config", "decoder_config", "encoder_config"):
            if "layer_sizes" in config.get(part) or {}:
                config[part]["layer_sizes"][0] += 1
        return r"decoder\.rungs\.0\.0\.weight is \[8, 12\] in the file, \[8, 13\] in the model"


class TestHierarchicalLadderVariational(TestHierarchicalLadderMLE):
    """The same with the bottom-up ladder encoder and the variational joint scheme (ICCV 2023)."""

    def get_config(self, **overrides):
        variational = dict(learner="vae_ebm", encoder_type="ladder", encoder_config={"layer_sizes": [4, 2]})
        return super().get_config(**merge_config_kwargs(variational, overrides))


@pytest.mark.parametrize("on_nonfinite", ["raise", "reset"])
def test_a_chain_that_diverges_over_the_layers_is_caught_and_never_checkpointed(tmp_path, on_nonfinite):
    """A step far too large for the layers' links: the same guard as every chain, a clear error or a reset, and no
    NaN in a saved model."""
    torch.manual_seed(0)
    config = LatentEBMConfig(**merge_config_kwargs(LADDER, {"sampler_config": {
        "prior_step_size": 1e4, "posterior_step_size": 1e4, "on_nonfinite": on_nonfinite}}))
    model = LatentEBMForImageGeneration(config)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, batch_size=8, sample_every=0,
                             checkpoint_every=1, num_grid_samples=4)
    if on_nonfinite == "raise":
        with pytest.raises(LangevinDivergenceError, match="non-finite"):
            LatentEBMTrainer(model, toy_images(), args).train()
        assert not list(tmp_path.rglob("model.safetensors"))
        return
    with pytest.warns(RuntimeWarning, match="reset to their start"):
        LatentEBMTrainer(model, toy_images(), args).train()
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert all(torch.isfinite(value).all() for value in reloaded.state_dict().values())


def test_without_links_the_prior_is_the_energy_over_a_gaussian_on_every_layer():
    """ICCV 2023's prior (links=False): U(z) = E_f(z) + |z|^2 / 2 over all layers, no link parameters."""
    torch.manual_seed(0)
    config = HierarchicalPriorConfig(layer_sizes=[3, 2, 2], energy="joint", hidden_dim=8, links=False)
    model = HierarchicalPrior.from_config(config, latent_dim=7)
    assert len(model.links) == 0 and "N(0, I) on every layer" in HierarchicalPrior.describe(config)
    latents = torch.randn(5, 7)
    torch.testing.assert_close(model.potential(latents), model.tilt_energy(latents) + latents.pow(2).sum(1) / 2)
    with pytest.raises(ValueError, match="no links"):
        model.link(0, latents[:, 3:5])


def test_the_preset_gives_each_paper_its_model():
    cvpr, iccv = LatentEBMConfig.hierarchical(), LatentEBMConfig.hierarchical(variational=True)
    assert cvpr.part_config("prior").layer_sizes == [2, 2, 2, 10] and cvpr.latent_dim == 16
    assert (cvpr.learner, cvpr.part_config("prior").energy, cvpr.part_config("prior").links) == ("mle", "layerwise",
                                                                                                True)
    assert (iccv.learner, iccv.part_config("prior").energy, iccv.part_config("prior").links) == ("vae_ebm", "joint",
                                                                                                False)
    assert LatentEBMConfig.hierarchical(variational=True, energy="layerwise").part_config("prior").energy == \
        "layerwise"
