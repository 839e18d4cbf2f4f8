"""Tests of the research plumbing in research/text/ (run with `pytest research/tests`; not part of the default suite)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from hf_latent_ebm import LatentEBMForTextGeneration, LatentEBMTextConfig
from hf_latent_ebm.tokenization import train_tokenizer

TINY_TEXT = dict(vocab_size=30, latent_dim=4, embedding_dim=8, hidden_dim=16, energy_hidden_dim=8,
                 sampler_config={"prior_steps": 3, "posterior_steps": 3}, max_length=12, decoder_dropout=0.0)
SCRIPTS = Path(__file__).resolve().parents[1] / "text"


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def save_tiny_models(folder, num_lines, **named_settings):
    """Writes a toy corpus and, per name, an untrained tiny text model (with its tokenizer) saved under that name.

    Returns the corpus path and the model folders, for the scripts that re-score saved models.
    """
    lines = [f"the cat number {i % 7} sat on the mat ." for i in range(num_lines)]
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    tokenizer = train_tokenizer(lines, min_frequency=1, max_length=12)
    torch.manual_seed(0)
    folders = []
    for name, settings in named_settings.items():
        model = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer),
                                                                  **settings}))
        model.set_tokenizer(tokenizer)
        model.save_pretrained(folder / name)
        folders.append(str(folder / name))
    return corpus, folders


def _table_run(tmp_path, seed, ebm_reverse, vae_reverse, max_steps=1000):
    rows = [{"model": "latent EBM prior", "nll": 110.0, "forward_ppl": 80.0, "reverse_ppl": ebm_reverse,
             "active_units": 3},
            {"model": "Gaussian-prior VAE", "nll": 109.0, "forward_ppl": 81.0, "reverse_ppl": vae_reverse,
             "active_units": 0}]
    path = tmp_path / f"seed{seed}.json"
    path.write_text(json.dumps({"data": "kjv", "max_steps": max_steps, "batch_size": 32, "lm_steps": 600,
                                "rows": rows}))
    return str(path)


def test_text_seeds_summary_pairs_models_by_seed(tmp_path):
    script = SCRIPTS / "text_seeds_summary.py"
    runs = [_table_run(tmp_path, 0, 150.0, 160.0), _table_run(tmp_path, 1, 170.0, 165.0),
            _table_run(tmp_path, 2, 140.0, 150.0)]
    results = tmp_path / "results.md"
    subprocess.run([sys.executable, str(script), *runs, "--results-md", str(results), "--section", "s"], check=True,
                   capture_output=True)
    text = results.read_text()
    assert "per seed: -10.00, +5.00, -10.00; mean -5.00" in text
    assert "below the VAE on 2 of 3 seeds" in text and "active units > 0 on 3 of 3" in text
    assert "| latent EBM prior | 110.00 ± 0.00 | 80.00 ± 0.00 | 153.33 ± 15.28 | 3.00 ± 0.00 |" in text
    mismatched = [runs[0], _table_run(tmp_path, 3, 150.0, 160.0, max_steps=2000)]
    failed = subprocess.run([sys.executable, str(script), *mismatched, "--results-md", str(results)],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "the runs differ" in failed.stderr


def test_reverse_ppl_spread_scores_each_latent_source(tmp_path):
    script = SCRIPTS / "text_reverse_ppl_spread.py"
    corpus, (folder,) = save_tiny_models(tmp_path, 200, model={})

    def run(*extra):
        output = tmp_path / "out.json"
        subprocess.run([sys.executable, str(script), folder, "--data", str(corpus), "--num-test", "5",
                        "--num-generated", "6", "--lm-steps", "2", "--batch-size", "4", "--output", str(output),
                        "--results-md", str(tmp_path / "results.md"), "--section", "s", *extra],
                       check=True, capture_output=True)
        return json.loads(output.read_text())["reverse_ppl"]

    scores = run("--seeds", "3", "4", "--latents", "prior", "posterior", "reference")
    assert set(scores) == {folder, f"{folder} (z from posterior)", f"{folder} (z from reference)"}
    assert all(len(values) == 2 and all(math.isfinite(v) and v > 1 for v in values) for values in scores.values())
    assert "by where the latents come from" in (tmp_path / "results.md").read_text()
    # Each source draws from its own freshly seeded generator: the prior's score does not depend on the others.
    assert run("--seeds", "3")[folder] == [scores[folder][0]]
    # --merge tabulates earlier outputs (say one per model) with each source paired against the model's own samples.
    for name, own, reference in (("a", [70.0], [72.0]), ("b", [69.0], [70.0])):
        (tmp_path / f"{name}.json").write_text(json.dumps({"seeds": [11], "lm_steps": 2, "num_generated": 6,
                                                           "latents": ["prior", "reference"], "reverse_ppl": {
                                                               name: own, f"{name} (z from reference)": reference}}))
    merged = subprocess.run([sys.executable, str(script), "--merge", str(tmp_path / "a.json"),
                             str(tmp_path / "b.json"), "--results-md", str(tmp_path / "merged.md"), "--section", "m"],
                            check=True, capture_output=True, text=True).stdout
    assert "| `a (z from reference)` | 72.00 | 72.00 |" in merged
    assert ("- own samples minus z from reference: -2.00, -1.00; mean -1.50, standard error 0.50; 2 of 2 below 0"
            in merged)
    assert "(a, b)" in (tmp_path / "merged.md").read_text()
    (tmp_path / "b.json").write_text(json.dumps({"seeds": [12], "lm_steps": 2, "num_generated": 6,
                                                 "latents": ["prior", "reference"], "reverse_ppl": {"b": [1.0]}}))
    failed = subprocess.run([sys.executable, str(script), "--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                             "--results-md", str(tmp_path / "merged.md")], capture_output=True, text=True)
    assert failed.returncode != 0 and "differs" in failed.stderr


def test_prior_fit_script_reports_each_sampler_setting(tmp_path):
    script = SCRIPTS / "text_prior_fit.py"
    corpus, (folder,) = save_tiny_models(tmp_path, 120, model={})
    output = tmp_path / "fit.json"
    command = [sys.executable, str(script), folder, "--data", str(corpus),
               "--num-sentences", "60", "--num-held-out", "20", "--steps", "4", "--report-every", "2",
               "--settings", '{"step_size": 0.4}', '{"step_size": 0.2, "num_steps": 3}', "--output", str(output),
               "--results-md", str(tmp_path / "results.md")]
    subprocess.run(command, check=True, capture_output=True)
    result = json.loads(output.read_text())
    assert [run["setting"] for run in result["runs"]] == [{"step_size": 0.4}, {"step_size": 0.2, "num_steps": 3}]
    for run in result["runs"]:
        assert [entry["step"] for entry in run["history"]] == [2, 4]
        assert all(entry["mmd"] >= -1e-6 and math.isfinite(entry["energy_gap"]) for entry in run["history"])
    assert "can the prior chain learn the aggregate posterior" in (tmp_path / "results.md").read_text()
    bad = subprocess.run(command[:-4] + ["--num-held-out", "60"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--num-held-out" in bad.stderr


def test_nll_script_rescores_saved_models_deterministically(tmp_path):
    script = SCRIPTS / "text_nll.py"
    corpus, folders = save_tiny_models(tmp_path, 120, **{"mle-ebm": {},
                                                         "vae-gaussian": {"learner": "vae", "prior_type": "gaussian"}})

    def run(*extra):
        output = tmp_path / "nll.json"
        subprocess.run([sys.executable, str(script), *folders, "--data", str(corpus), "--num-test",
                        "4", "--is-samples", "3", "--output", str(output), "--results-md",
                        str(tmp_path / "results.md"), *extra], check=True, capture_output=True)
        return json.loads(output.read_text())

    result = run()
    assert (result["num_test"], result["is_samples"], result["seed"]) == (4, 3, 0)
    assert set(result["models"]) == set(folders)
    assert all(math.isfinite(row["nll"]) and row["nll"] > 0 and row["ppl"] > 1 for row in result["models"].values())
    again = run()["models"]  # same seed, same chains and samples: the same estimate
    assert {k: v["nll"] for k, v in again.items()} == {k: v["nll"] for k, v in result["models"].items()}
    assert run("--seed", "1")["models"][folders[0]]["nll"] != result["models"][folders[0]]["nll"]
    assert "test NLL of saved models" in (tmp_path / "results.md").read_text()


def test_prior_fit_mmd_is_zero_for_a_set_with_itself_and_grows_with_a_shift():
    sys.path.insert(0, str(SCRIPTS))
    from text_prior_fit import mmd

    points = torch.randn(200, 8, generator=seeded(1))
    assert abs(mmd(points, points)) < 1e-6
    assert 0 < mmd(points, points + 0.5) < mmd(points, points + 2.0)


def test_sweep_summary_pairs_each_ebm_config_with_the_vae_by_seed(tmp_path):
    script = SCRIPTS / "text_sweep_summary.py"
    shared = {"data": "kjv", "max_steps": 10, "batch_size": 4, "lm_steps": 2, "num_test": 5, "is_samples": 2,
              "device": "CPU"}

    def row(model, reverse_ppl, active_units=None):
        return {"model": model, "nll": 1.0, "forward_ppl": 2.0, "reverse_ppl": reverse_ppl,
                "active_units": active_units, "bleu": 0.1, "train_time_s": 1.0}

    for seed, (vae, ebm) in enumerate([(70.0, 68.0), (71.0, 70.5)]):
        (tmp_path / f"vae_seed{seed}.json").write_text(json.dumps(
            {**shared, "config_overrides": {}, "rows": [row("Gaussian-prior VAE", vae, 0)]}))
        (tmp_path / f"ebm-a_seed{seed}.json").write_text(json.dumps(
            {**shared, "config_overrides": {"x": 1}, "rows": [row("latent EBM prior", ebm, 3 + seed)]}))
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md"),
                             "--note", "Trained elsewhere."], check=True, capture_output=True, text=True).stdout
    assert "metric LMs trained 2 steps. Trained elsewhere.\n" in result
    assert "- ebm-a, reverse PPL: -2.00, -0.50 (seeds 0, 1); mean -1.25, standard error 0.75; 2 of 2 below 0" in result
    assert "- ebm-a, test NLL: +0.00, +0.00 (seeds 0, 1)" in result
    assert "- ebm-a, active units: 3/4" in result
    # The VAE with a latent EBM prior is paired with the VAE too, named by config and model.
    for seed, reverse_ppl in enumerate([69.0, 72.0]):
        (tmp_path / f"vebm_seed{seed}.json").write_text(json.dumps(
            {**shared, "config_overrides": {}, "rows": [row("VAE with latent EBM prior", reverse_ppl, 4)]}))
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md")],
                            check=True, capture_output=True, text=True).stdout
    assert ("- vebm (VAE with latent EBM prior), reverse PPL: -1.00, +1.00 (seeds 0, 1); mean +0.00, standard error "
            "1.00; 1 of 2 below 0") in result
    assert "- ebm-a, reverse PPL: -2.00, -0.50" in result
    for seed in (0, 1):
        (tmp_path / f"vebm_seed{seed}.json").unlink()
    # Re-scorings (text_reverse_ppl_spread.py outputs) are averaged in per model; other latent sources are ignored.
    (tmp_path / "spread.json").write_text(json.dumps({"lm_steps": 2, "reverse_ppl": {
        "runs/x/ebm-a_seed0/mle-ebm": [66.0], "runs/x/vae_seed0/vae-gaussian": [70.0],
        "runs/x/ebm-a_seed0/mle-ebm (z from posterior)": [1.0]}}))
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md"),
                             "--rescored", str(tmp_path / "spread.json")], check=True, capture_output=True,
                            text=True).stdout
    assert ("- ebm-a, reverse PPL averaged over each model's scorings (1/2 each): -3.00, -0.50 (seeds 0, 1); "
            "mean -1.75, standard error 1.25; 2 of 2 below 0") in result
    assert "| ebm-a | latent EBM prior |" in result and "| 2 |" in result
    # With a second VAE config the pairing baseline must be named.
    (tmp_path / "fb_seed0.json").write_text(json.dumps(
        {**shared, "config_overrides": {"vae_free_bits": 0.25}, "rows": [row("Gaussian-prior VAE", 75.0, 5)]}))
    failed = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md")],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "--vae-config" in failed.stderr
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md"),
                             "--vae-config", "fb"], check=True, capture_output=True, text=True).stdout
    assert "- ebm-a, reverse PPL: -7.00 (seeds 0);" in result and "| vae | Gaussian-prior VAE |" in result
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md"),
                             "--vae-config", "fb", "vae"], check=True, capture_output=True, text=True).stdout
    assert "Latent EBM minus VAE (fb)" in result and "Latent EBM minus VAE (vae)" in result
    assert "- ebm-a, reverse PPL: -7.00 (seeds 0);" in result and "- ebm-a, reverse PPL: -2.00, -0.50" in result
    (tmp_path / "fb_seed0.json").unlink()
    # NLL re-scorings (text_nll.py outputs) replace the re-scored models' NLL; the unscored VAE keeps its row's.
    (tmp_path / "nll.json").write_text(json.dumps({"num_test": 5, "is_samples": 2, "seed": 1, "models": {
        "runs/x/ebm-a_seed1/mle-ebm": {"nll": 0.25}}}))
    result = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md"),
                             "--nll-rescored", str(tmp_path / "nll.json")], check=True, capture_output=True,
                            text=True).stdout
    assert "- ebm-a, test NLL with the text_nll.py re-scorings: -0.75 (seeds 1);" in result
    (tmp_path / "nll.json").write_text(json.dumps({"num_test": 5, "is_samples": 3, "seed": 1, "models": {
        "runs/x/ebm-a_seed1/mle-ebm": {"nll": 0.25}}}))
    failed = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md"),
                             "--nll-rescored", str(tmp_path / "nll.json")], capture_output=True, text=True)
    assert failed.returncode != 0 and "is_samples 3" in failed.stderr
    # Runs that differ in anything but the overrides and the seed are refused.
    (tmp_path / "vae_seed1.json").write_text(json.dumps(
        {**shared, "max_steps": 11, "config_overrides": {}, "rows": [row("Gaussian-prior VAE", 71.0, 0)]}))
    failed = subprocess.run([sys.executable, str(script), str(tmp_path), "--results-md", str(tmp_path / "r.md")],
                            capture_output=True, text=True)
    assert failed.returncode != 0 and "differ" in failed.stderr


def test_sweep_summary_reads_several_folders_as_one_sweep(tmp_path):
    """Runs filed once under docs/results/text/<experiment>/ are compared across folders, as if in one."""
    script = SCRIPTS / "text_sweep_summary.py"
    shared = {"data": "kjv", "max_steps": 10, "batch_size": 4, "lm_steps": 2, "num_test": 5, "is_samples": 2,
              "device": "CPU", "config_overrides": {}}

    def row(model, reverse_ppl):
        return {"model": model, "nll": 1.0, "forward_ppl": 2.0, "reverse_ppl": reverse_ppl, "active_units": 1,
                "bleu": 0.1, "train_time_s": 1.0}

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for seed, (vae, ebm) in enumerate([(70.0, 68.0), (71.0, 70.5)]):
        (tmp_path / "a" / f"vae_seed{seed}.json").write_text(json.dumps(
            {**shared, "rows": [row("Gaussian-prior VAE", vae)]}))
        (tmp_path / "b" / f"ebm-a_seed{seed}.json").write_text(json.dumps(
            {**shared, "rows": [row("latent EBM prior", ebm)]}))
    together = [sys.executable, str(script), "--results-md", str(tmp_path / "r.md")]
    result = subprocess.run([*together, str(tmp_path / "b"), str(tmp_path / "a")], check=True, capture_output=True,
                            text=True).stdout
    assert "- ebm-a, reverse PPL: -2.00, -0.50 (seeds 0, 1)" in result
    # Rows come in file-name order whatever the order of the folders, as from one folder.
    assert result.index("| ebm-a | latent EBM prior |") < result.index("| vae | Gaussian-prior VAE |")
    (tmp_path / "b" / "vae_seed0.json").write_text((tmp_path / "a" / "vae_seed0.json").read_text())
    failed = subprocess.run([*together, str(tmp_path / "a"), str(tmp_path / "b")], capture_output=True, text=True)
    assert failed.returncode != 0 and "more than one" in failed.stderr


def test_continue_script_trains_in_chunks_like_an_uninterrupted_run(tmp_path):
    from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

    script = SCRIPTS / "text_continue.py"
    corpus, (folder,) = save_tiny_models(tmp_path, 60, ebm={})
    ids_path = tmp_path / "ids.pt"
    subprocess.run([sys.executable, str(script), "--export-ids", str(ids_path), "--data", str(corpus),
                    "--max-length", "12"], check=True, capture_output=True)
    ids = torch.load(ids_path, weights_only=True)
    assert ids.dtype == torch.int16 and ids.shape[1] <= 12 and ids.shape[0] < 60  # the train split only

    def train(output_dir, max_steps):
        model = LatentEBMForTextGeneration.from_pretrained(folder)
        args = TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, batch_size=4, seed=3,
                                 sample_every=0, checkpoint_every=0, num_grid_samples=2)
        LatentEBMTrainer(model, ids.long(), args).train()
        return model

    uninterrupted = train(tmp_path / "straight", 7)
    train(tmp_path / "chunked", 2)
    command = [sys.executable, str(script), str(tmp_path / "chunked"), "--ids", str(ids_path), "--chunk", "3",
               "--device", "cpu"]
    subprocess.run(command + ["--max-steps", "7"], check=True, capture_output=True)
    chunked = tmp_path / "chunked"
    assert sorted(p.name for p in (chunked / "checkpoints").glob("step-*")) == [
        "step-00000002", "step-00000003", "step-00000006", "step-00000007"]  # chunk boundaries, none removed
    assert [record["step"] for record in json.loads((chunked / "continue_log.json").read_text())] == [3, 6, 7]
    assert json.loads((chunked / "training_time.json").read_text())["steps"] == 7
    resumed = LatentEBMForTextGeneration.from_pretrained(chunked)
    for (name, expected), (_, actual) in zip(uninterrupted.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(expected, actual, atol=1e-6), name
    # A zero time budget still runs one chunk, then stops; a target at or below the current step is refused.
    subprocess.run(command + ["--max-steps", "20", "--time-budget", "0"], check=True, capture_output=True)
    assert (chunked / "checkpoints" / "latest").read_text().strip() == "step-00000009"
    refused = subprocess.run(command + ["--max-steps", "9"], capture_output=True, text=True)
    assert refused.returncode != 0 and "already at step 9" in refused.stderr
