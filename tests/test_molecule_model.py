"""The molecule model kind (issue 35, items 2, 5 and 6): SMILES / SELFIES under the latent EBM prior, the property head
p(y | z), design by gradual distribution shifting (SGDS), and the CLI's smiles task, sample --metrics and design, on
the few dozen molecules shipped with the tests."""

import json
import math
import statistics

import pytest
import torch

pytest.importorskip("rdkit", reason="RDKit is the molecules extra: pip install 'hf-latent-ebm[molecules]'")

from hf_latent_ebm import LatentEBMForMoleculeGeneration, LatentEBMMoleculeConfig  # noqa: E402
from hf_latent_ebm.data.molecules import molecule_properties  # noqa: E402
from hf_latent_ebm.decoders.properties import PropertyHeadDecoder  # noqa: E402
from hf_latent_ebm.molecule_design import check_objective, design_molecules  # noqa: E402
from hf_latent_ebm.tokenization import train_tokenizer  # noqa: E402

from .test_molecules import SMILES  # noqa: E402

NAMES = ["qed", "logp"]
SMALL = {"latent_dim": 8, "decoder_config": {"embedding_dim": 16, "hidden_dim": 32, "dropout": 0.0},
         "sampler_config": {"prior_steps": 5, "posterior_steps": 5}}


def make_model(property_names=NAMES, representation="smiles", seed=0, **overrides):
    strings = SMILES
    if representation == "selfies":
        from hf_latent_ebm.data.molecules import to_selfies

        strings = to_selfies(SMILES)
    tokenizer = train_tokenizer(strings, kind=representation, min_frequency=1, max_length=80)
    values = molecule_properties(SMILES)
    torch.manual_seed(seed)
    config = LatentEBMMoleculeConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, unk_token_id=tokenizer.unk_token_id, representation=representation,
        property_names=list(property_names), property_means=[statistics.fmean(values[n]) for n in property_names],
        property_stds=[statistics.pstdev(values[n]) for n in property_names], **{**SMALL, **overrides})
    model = LatentEBMForMoleculeGeneration(config)
    model.set_tokenizer(tokenizer)
    return model


def train(model, steps=30, seed=0):
    batch = model.molecule_batch(SMILES, molecule_properties(SMILES) if model.config.property_names else None)
    optimizer, generator = model.build_optimizer(), torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        output = model(**batch, generator=generator)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss_terms["decoder_loss"].item())
    return model.eval(), losses


def test_config_rejects_unknown_properties_and_mismatched_scaling():
    with pytest.raises(ValueError, match="unknown property 'toxicity'"):
        LatentEBMMoleculeConfig(property_names=["toxicity"], property_means=[0.0], property_stds=[1.0])
    with pytest.raises(ValueError, match="one value per property"):
        LatentEBMMoleculeConfig(property_names=["qed"])
    with pytest.raises(ValueError, match="representation"):
        LatentEBMMoleculeConfig(representation="inchi")
    with pytest.raises(ValueError, match="repeats"):
        LatentEBMMoleculeConfig(property_names=["qed", "qed"], property_means=[0.0, 0.0], property_stds=[1.0, 1.0])


def test_learning_lowers_the_joint_loss_and_the_head_learns_the_properties():
    model = make_model()
    before = model.predict_properties(SMILES, torch.Generator().manual_seed(1))
    model, losses = train(model, steps=60)
    assert statistics.fmean(losses[-10:]) < 0.8 * statistics.fmean(losses[:5])
    true = molecule_properties(SMILES)
    after = model.predict_properties(SMILES, torch.Generator().manual_seed(1))
    # Inferred from the strings alone, the head's QED is closer to RDKit's after training than before.
    error = lambda predicted: statistics.fmean(abs(p - t) for p, t in zip(predicted["qed"], true["qed"]))  # noqa
    assert error(after) < error(before)


def test_the_property_term_is_part_of_the_posterior_potential_and_nan_leaves_it_out():
    model = make_model()
    head = model.property_head
    assert isinstance(head, PropertyHeadDecoder)
    ids = model.tokenize_molecules(SMILES[:4])
    properties = model.standardize_properties({name: molecule_properties(SMILES[:4])[name] for name in NAMES})
    latents = torch.randn(4, 8)
    text_only = model.joint_potential(ids, latents)
    joint = model.joint_potential({"input_ids": ids, "properties": properties}, latents)
    expected = head.property_negative_log_likelihood(properties, latents)
    torch.testing.assert_close(joint - text_only, expected)
    unknown = torch.full_like(properties, float("nan"))
    torch.testing.assert_close(model.joint_potential({"input_ids": ids, "properties": unknown}, latents), text_only)
    with pytest.raises(ValueError, match="inf"):
        model.check_inputs({"input_ids": ids, "properties": properties.masked_fill(properties > -100, math.inf)})
    with pytest.raises(ValueError, match=r"\(batch, 2\) float"):
        model.check_inputs({"input_ids": ids, "properties": properties[:, :1]})


def test_the_design_chain_samples_z_given_a_property_target():
    # A known answer: with the head y = 3 z_1 and the energy switched off, p(z) p(y* | z) is Gaussian, and z_1 given
    # y* = 3 has mean 3 * 3 / (sigma^2 + 9) (sigma = 0.2236), so the head's predictions land near the target.
    model = make_model()
    head = torch.nn.Linear(8, 2)
    torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
    head.weight.data[0, 0] = 3.0
    model.property_head.head = head
    for parameter in model.prior.parameters():
        parameter.data.zero_()
    target = torch.full((256, 2), float("nan"))
    target[:, 0] = 3.0  # logp left free
    moved = model.latents_for_properties(target, torch.zeros(256, 8), num_steps=600, step_size=0.1,
                                         generator=torch.Generator().manual_seed(0))
    sigma = model.config.property_sigma
    assert moved[:, 0].mean().item() == pytest.approx(9 / (sigma**2 + 9), abs=0.05)
    assert moved[:, 1:].std().item() == pytest.approx(1.0, abs=0.15)  # the free coordinates keep the prior


def test_save_and_reload_keep_generation_predictions_and_scaling(tmp_path):
    from transformers import AutoModel

    model, _ = train(make_model(), steps=5)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is LatentEBMForMoleculeGeneration
    assert reloaded.config.property_means == model.config.property_means
    unsorted = [SMILES[7], SMILES[2], SMILES[11], SMILES[0]]  # an order no sort gives
    assert reloaded.generate_smiles(6, torch.Generator().manual_seed(3)) == \
        model.generate_smiles(6, torch.Generator().manual_seed(3))
    assert reloaded.predict_properties(unsorted, torch.Generator().manual_seed(4)) == \
        model.predict_properties(unsorted, torch.Generator().manual_seed(4))
    card = (tmp_path / "README.md").read_text()
    assert "qed, logp" in card and "SMILES" in card


def test_the_gaussian_baseline_is_one_field_away_and_selfies_always_decode_to_molecules():
    from hf_latent_ebm.metrics.molecules import validity

    gaussian, losses = train(make_model(prior_type="gaussian"), steps=10)
    assert gaussian.prior.has_energy is False and all(map(math.isfinite, losses))
    selfies = make_model(representation="selfies")
    samples = selfies.generate_smiles(20, torch.Generator().manual_seed(0))
    assert len(samples) == 20 and validity(samples) >= 0.9  # untrained: SELFIES, not the model, makes them valid
    assert selfies.to_smiles(selfies.to_model_strings(["CCO"])) == ["CCO"]


def test_unknown_tokens_and_models_without_a_head_are_named():
    model = make_model(property_names=[])
    with pytest.raises(ValueError, match=r"'\[Si\]'"):
        model.tokenize_molecules(["CC[Si](C)C"])
    with pytest.raises(ValueError, match="no property head"):
        model.predict_properties(SMILES[:2])
    with pytest.raises(ValueError, match="predicts nothing"):
        check_objective(model, {"qed": 0.02})


def test_design_keeps_the_best_raises_nothing_it_should_not_and_logs_every_round(tmp_path):
    model, _ = train(make_model(), steps=20)
    with pytest.raises(ValueError, match="unknown property 'toxicity'"):
        design_molecules(model, SMILES, {"toxicity": 1.0})
    with pytest.raises(ValueError, match="predicts"):
        design_molecules(model, SMILES, {"sa": -0.05})
    with pytest.raises(ValueError, match="fewer than batch_size"):
        design_molecules(model, SMILES, {"qed": 0.02}, batch_size=64)
    assert model.encodable(["CCO", "CC[Si](C)C", "C" * 100]) == [True, False, False]
    with pytest.warns(UserWarning, match="1 of 21 starting molecules"):  # a silicon atom the model never saw
        result = design_molecules(model, SMILES + ["CC[Si](C)C"], {"qed": 0.05}, rounds=3, batch_size=8,
                                  progress=False, generator=torch.Generator().manual_seed(0),
                                  plot_path=tmp_path / "rounds.png")
    assert [record["round"] for record in result.history] == [0, 1, 2, 3]
    tops = [record["top1"] for record in result.history]
    assert tops == sorted(tops)  # the population keeps its best, so top-1 never falls
    assert len(result.smiles) == len(SMILES) and result.scores == sorted(result.scores, reverse=True)
    assert result.properties["qed"] == pytest.approx(molecule_properties(result.smiles)["qed"])
    assert all(0 <= record[name] <= 1 for record in result.history[1:] for name in ("valid", "unique", "novel"))
    assert (tmp_path / "rounds.png").stat().st_size > 0
    multi = design_molecules(model, SMILES, {"qed": 0.05, "logp": -0.5}, rounds=1, batch_size=8, refit=False,
                             progress=False)
    assert len(multi.history) == 2 and "mean_logp" in multi.history[1]


def test_cli_trains_on_a_users_file_samples_with_metrics_and_designs(tmp_path, capsys):
    from hf_latent_ebm.cli import main

    data = tmp_path / "mine.smi"
    data.write_text("\n".join(SMILES[:12] + ["", "C1CC", "not a molecule"] + SMILES[12:]) + "\n")
    model_dir = tmp_path / "model"
    main(["train", "--task", "smiles", "--data", str(data), "--max-steps", "3", "--batch-size", "8",
          "--properties", "qed,logp", "--output-dir", str(model_dir), "--sample-every", "0",
          "--config-overrides", json.dumps(SMALL)])
    assert "20 molecules; skipped 1 empty and 2 invalid" in capsys.readouterr().err
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "latent_ebm_molecule" and config["property_names"] == ["qed", "logp"]
    output = tmp_path / "mols.smi"
    main(["sample", "--model", str(model_dir), "--num-samples", "40", "--output", str(output), "--metrics",
          "--reference", str(data)])
    assert len(output.read_text().splitlines()) == 40
    metrics = json.loads((tmp_path / "mols_metrics.json").read_text())
    assert 0 <= metrics["validity"] <= 1 and "novelty" in metrics and "fcd" in metrics
    main(["design", "--model", str(model_dir), "--property", "qed", "--rounds", "1", "--population", "16",
          "--data", str(data), "--batch-size", "8", "--output-dir", str(tmp_path / "design")])
    history = json.loads((tmp_path / "design" / "design_history.json").read_text())
    assert history["objective"] == {"qed": 0.02} and len(history["history"]) == 2
    assert (tmp_path / "design" / "designed.csv").read_text().startswith("smiles,score,")


@pytest.mark.parametrize("argv, message", [
    (["design", "--property", "toxicity"], "unknown property 'toxicity'"),
    (["design", "--property", "qed,sa", "--shift", "0.1"], "1 value"),
    (["train", "--task", "smiles", "--smiles-column", "smi"], "smi"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    from hf_latent_ebm.cli import main

    table = tmp_path / "mine.csv"
    table.write_text("name,SMILES\n" + "\n".join(f"m{i},{s}" for i, s in enumerate(SMILES)) + "\n")
    extra = ["--model", str(tmp_path), "--data", str(table)] if argv[0] == "design" else \
        ["--data", str(table), "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit):
        main(argv + extra)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()
