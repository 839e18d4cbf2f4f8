"""The molecule table (issue 35): the latent-EBM prior model, the same network with a Gaussian prior, and a plain
character-level LSTM language model (the same registered LSTM decoder with z fixed at zero), on the same MOSES
training subset with the same budget, scored by the MOSES metrics offline, seed by seed.

Each (variant, seed) trains in its own folder under --runs and writes metrics.json there, so runs can be spread
over processes (`--variants ebm --seeds 0 1 2` in one, `--variants gaussian` in another) and rerun only where
missing; `--report` gathers every metrics.json into --output (JSON) and prints the markdown table.

    python scripts/molecule_table.py --variants ebm gaussian lstm --seeds 0 1 2
    python scripts/molecule_table.py --report
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

# The SELFIES variants are SGDS's representation (every SELFIES string decodes to a molecule): the one informed change
# after the SMILES runs, whose validity the decoder's budget limits (docs/molecules.md).
VARIANTS = {"ebm": {}, "gaussian": {"prior_type": "gaussian"}, "lstm": None,
            "ebm-selfies": {"representation": "selfies"},
            "gaussian-selfies": {"prior_type": "gaussian", "representation": "selfies"}}
METRICS = ("validity", "unique@1000", "unique@10000", "novelty", "int_div1", "int_div2", "fcd", "snn", "frag", "scaf")
# The MOSES benchmark paper's rows (Polykovskiy et al. 2020, Table 2, test set; models trained to convergence on the
# 1.58M training molecules on a GPU), quoted beside ours.
MOSES_PAPER_ROWS = {
    "CharRNN (MOSES paper)": {"validity": 0.975, "unique@1000": 1.0, "unique@10000": 0.999, "novelty": 0.842,
                              "int_div1": 0.856, "int_div2": 0.850, "fcd": 0.073, "snn": 0.601, "frag": 1.000,
                              "scaf": 0.924},
    "VAE (MOSES paper)": {"validity": 0.977, "unique@1000": 1.0, "unique@10000": 0.998, "novelty": 0.695,
                          "int_div1": 0.856, "int_div2": 0.850, "fcd": 0.099, "snn": 0.626, "frag": 0.999,
                          "scaf": 0.939},
}


def model_settings(args) -> dict:
    """The network every variant shares (the LSTM decoder's sizes) and the run's budget."""
    return {"decoder_config": {"embedding_dim": args.embedding_dim, "hidden_dim": args.hidden_dim, "dropout": 0.2},
            "latent_dim": args.latent_dim}


def training_file(args) -> Path:
    """The MOSES training subset every variant and seed trains on (seed 0's draw), as a .smi file."""
    from hf_latent_ebm.data.molecules import load_moses

    path = Path(args.runs) / f"moses-train-{args.train_size}.smi"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(".tmp")
        staging.write_text("\n".join(load_moses("train", limit=args.train_size, seed=0)["smiles"]) + "\n")
        staging.replace(path)
    return path


def train_latent_model(variant: str, seed: int, folder: Path, args):
    """Train with the CLI (the smiles task) on the subset; return a sampler: count -> generated SMILES."""
    from transformers import AutoModel

    overrides = {**model_settings(args), **VARIANTS[variant]}
    command = [sys.executable, "-m", "hf_latent_ebm.cli", "train", "--task", "smiles", "--data",
               str(training_file(args)), "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--seed", str(seed), "--sample-every", "0", "--checkpoint-every", str(args.steps),
               "--output-dir", str(folder), "--config-overrides", json.dumps(overrides)]
    subprocess.run(command, check=True)
    model = AutoModel.from_pretrained(folder).eval()
    generator = torch.Generator().manual_seed(seed)
    return lambda count: model.generate_smiles(count, generator)


def train_language_model(seed: int, folder: Path, args):
    """The plain LSTM language model: the molecule model's registered LSTM decoder and tokenizer kind, trained by
    maximum likelihood with z = 0 (so it carries nothing), on the same data with the same steps, batch size and
    learning rate; returns a sampler: count -> generated SMILES."""
    from hf_latent_ebm import LatentEBMMoleculeConfig
    from hf_latent_ebm.cli.tasks import MOLECULE_MIN_LENGTH
    from hf_latent_ebm.decoders import DECODERS
    from hf_latent_ebm.tokenization import train_tokenizer

    torch.manual_seed(seed)
    smiles = training_file(args).read_text().split()
    tokenizer = train_tokenizer(smiles, kind="smiles", min_frequency=1, max_length=MOLECULE_MIN_LENGTH)
    config = LatentEBMMoleculeConfig(vocab_size=len(tokenizer), **model_settings(args))
    decoder = DECODERS.get("lstm")(latent_dim=config.latent_dim, **config.part_arguments("decoder"))
    ids = tokenizer(smiles, padding=True, return_tensors="pt")["input_ids"]
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.part_config("learner").decoder_learning_rate)
    generator = torch.Generator().manual_seed(seed)
    decoder.train()
    for step in range(args.steps):
        rows = torch.randint(len(ids), (args.batch_size,), generator=generator)
        batch = decoder.compact(ids[rows])
        loss = decoder.negative_log_likelihood(batch, torch.zeros(len(batch), config.latent_dim)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % 100 == 0:
            print(f"lstm seed {seed} step {step + 1}: loss {loss.item():.3f}", flush=True)
    decoder.eval()
    folder.mkdir(parents=True, exist_ok=True)
    hidden = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}

    def sample(count: int) -> list[str]:
        with torch.no_grad():
            generated = decoder.generate(torch.zeros(count, config.latent_dim), MOLECULE_MIN_LENGTH,
                                         generator=generator)
        return [tokenizer.decode([i for i in row.tolist() if i not in hidden]) for row in generated]

    return sample


def draw(sampler, count: int, chunk: int = 1000) -> list[str]:
    return [smiles for start in range(0, count, chunk) for smiles in sampler(min(chunk, count - start))]


def score(samples: list[str], extra: list[str], args) -> dict:
    """The MOSES metrics of `samples` (the first --num-samples); unique@10k on the first 10k valid ones of samples
    and `extra` (drawn until 10k are valid, at most 2x --num-samples in all; MOSES draws 30k)."""
    from hf_latent_ebm.data.molecules import load_moses
    from hf_latent_ebm.metrics.molecules import (frechet_chemnet_distance, fragment_similarity, internal_diversity,
                                                 nearest_neighbour_similarity, novelty, scaffold_similarity,
                                                 uniqueness, validity)

    training = training_file(args).read_text().split()
    test = list(load_moses("test", limit=args.reference_size, seed=0)["smiles"])
    metrics = {"validity": lambda: validity(samples), "novelty": lambda: novelty(samples, training),
               "int_div1": lambda: internal_diversity(samples[:args.diversity_size], p=1),
               "int_div2": lambda: internal_diversity(samples[:args.diversity_size], p=2),
               "fcd": lambda: frechet_chemnet_distance(samples),
               "snn": lambda: nearest_neighbour_similarity(samples, test),
               "frag": lambda: fragment_similarity(samples, test), "scaf": lambda: scaffold_similarity(samples, test),
               "unique@1000": lambda: uniqueness(samples + extra, 1000),
               "unique@10000": lambda: uniqueness(samples + extra, 10000)}
    results = {}
    for name, compute in metrics.items():
        try:
            results[name] = compute()
        except ValueError as error:  # too few valid molecules for this metric: no figure rather than a wrong one
            print(f"{name}: {error}", flush=True)
            results[name] = None
    return results


def run(args) -> None:
    from hf_latent_ebm.metrics.molecules import canonical_valid

    for variant in args.variants:
        for seed in args.seeds:
            folder = Path(args.runs) / f"{variant}-seed{seed}"
            metrics_file = folder / "metrics.json"
            if metrics_file.exists():
                continue
            started = time.time()
            sampler = train_language_model(seed, folder, args) if variant == "lstm" else \
                train_latent_model(variant, seed, folder, args)
            trained = time.time() - started
            samples = draw(sampler, args.num_samples)
            extra = []
            while len(canonical_valid(samples + extra)) < 10_000 and len(samples + extra) < 2 * args.num_samples:
                extra += draw(sampler, 2000)
            sampled = time.time() - started - trained
            (folder / "generated.smi").write_text("\n".join(samples) + "\n")
            results = score(samples, extra, args)
            record = {"variant": variant, "seed": seed, "metrics": results, "train_s": round(trained, 1),
                      "sample_s": round(sampled, 1), "samples_for_unique10k": len(samples) + len(extra),
                      "settings": {key: getattr(args, key) for key in ("train_size", "steps", "batch_size",
                                                                       "num_samples", "hidden_dim",
                                                                       "embedding_dim", "latent_dim")},
                      "device": "cpu", "torch_threads": torch.get_num_threads()}
            metrics_file.write_text(json.dumps(record, indent=2))
            print(json.dumps(record), flush=True)


def report(args) -> None:
    records = [json.loads(path.read_text()) for path in sorted(Path(args.runs).glob("*/metrics.json"))]
    rows = {}
    for variant in VARIANTS:
        runs = [record for record in records if record["variant"] == variant]
        if not runs:
            continue
        summary = {}
        for metric in METRICS:
            values = [run["metrics"][metric] for run in runs if run["metrics"].get(metric) is not None]
            if values:
                summary[metric] = {"mean": statistics.fmean(values),
                                   "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
        rows[variant] = {"seeds": sorted(run["seed"] for run in runs), "metrics": summary,
                         "settings": runs[0]["settings"],
                         "train_s": [run["train_s"] for run in runs], "sample_s": [run["sample_s"] for run in runs]}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"ours": rows, "moses_paper": MOSES_PAPER_ROWS}, indent=2))
    # The property distributions of each variant's first seed's samples against the training molecules.
    from hf_latent_ebm.metrics.molecules import plot_property_distributions

    training = training_file(args).read_text().split()[:3000]
    for variant, row in rows.items():
        generated = (Path(args.runs) / f"{variant}-seed{row['seeds'][0]}" / "generated.smi").read_text().split()
        try:
            plot_property_distributions(generated, training,
                                        Path(args.output).with_name(f"properties_{variant}.png"))
        except ValueError as error:  # no valid molecule to plot
            print(f"{variant}: no property plot: {error}")
    names = {"ebm": "latent EBM prior (ours)", "gaussian": "Gaussian prior, same network", "lstm": "LSTM LM",
             "ebm-selfies": "latent EBM prior, SELFIES", "gaussian-selfies": "Gaussian prior, SELFIES"}
    lines = ["| model | seeds | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
    for variant, row in rows.items():
        cells = [f"{row['metrics'][m]['mean']:.3f} ± {row['metrics'][m]['std']:.3f}" if m in row["metrics"] else "n/a"
                 for m in METRICS]
        lines.append(f"| {names[variant]} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    for name, values in MOSES_PAPER_ROWS.items():
        lines.append(f"| {name} | | " + " | ".join(f"{values[m]:.3f}" for m in METRICS) + " |")
    settings = next(iter(rows.values()))["settings"] if rows else {}
    body = "\n".join(lines) + (
        f"\n\nOurs: {settings.get('train_size')} MOSES training molecules, {settings.get('steps')} steps of batch "
        f"{settings.get('batch_size')}, LSTM {settings.get('hidden_dim')} wide, {settings.get('num_samples')} samples "
        "per model, mean ± std over seeds, on this project's 2-core CPU; FCD against the MOSES test set's shipped "
        "statistics, SNN / Frag / Scaf against 10k test molecules, novelty against the training subset, IntDiv over "
        "the first 3000 samples; n/a: too few valid molecules for the metric (unique@10k needs 10k valid among at most "
        "20k samples). The MOSES rows: the MOSES README's metrics table (Polykovskiy et al. 2020), models trained to "
        "convergence on all 1.58M training molecules on a GPU, 30k samples.\n\nCommand: `python "
        "scripts/molecule_table.py --variants ebm gaussian lstm --seeds 0 1 2`, `python scripts/molecule_table.py "
        "--variants ebm-selfies gaussian-selfies --seeds 0`, then `python scripts/molecule_table.py --report`; raw "
        "numbers: `docs/results/molecules/moses-table/molecule_table.json`, property plots `properties_<model>.png` "
        "beside it.")
    print(body)
    if args.section:
        from hf_latent_ebm.utils import update_results_section

        update_results_section(args.section, "molecule_table", "Molecules: MOSES distribution metrics (SMILES)", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--train-size", type=int, default=20_000, help="MOSES training molecules (seeded subset)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-dim", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--diversity-size", type=int, default=3000,
                        help="IntDiv over the first N samples (all pairs: quadratic)")
    parser.add_argument("--reference-size", type=int, default=10_000,
                        help="MOSES test molecules for SNN / Frag / Scaf (FCD uses the whole test set's statistics)")
    parser.add_argument("--runs", default="runs/molecule_table")
    parser.add_argument("--output", default="docs/results/molecules/moses-table/molecule_table.json")
    parser.add_argument("--section", default="docs/results.md", help="with --report: the results file to update")
    parser.add_argument("--report", action="store_true", help="gather the runs' metrics and print the table")
    args = parser.parse_args()
    report(args) if args.report else run(args)


if __name__ == "__main__":
    main()
