"""Summarise `scripts/text_table.py` runs over seeds: per-seed and mean metrics of each model, and the paired
difference between the latent-EBM model and the Gaussian-prior VAE (the target of Pang et al. 2020's text table).

    python research/text/text_seeds_summary.py docs/results/text/table-2000-steps/text_table_seed*.json \\
        --section text-seeds-steps2000

Seeds differ in the models' initialisation, data order, chains and metric LMs; the corpus split is fixed, so the
difference between two models on the same seed is a paired comparison.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from hf_latent_ebm.utils import update_results_section as update_section

EBM, VAE = "latent EBM prior", "Gaussian-prior VAE"
VAE_EBM = "VAE with latent EBM prior"  # the variational learner (text_table.py --models vae_ebm)
METRICS = [("nll", "test NLL ↓"), ("forward_ppl", "forward PPL ↓"), ("reverse_ppl", "reverse PPL ↓"),
           ("active_units", "active units")]


def mean_and_spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="JSON files written by scripts/text_table.py, one per seed")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--section", default="text-seeds-summary")
    args = parser.parse_args()

    runs = [json.loads(Path(path).read_text()) for path in args.results]
    settings = {(run["data"], run["max_steps"], run["batch_size"], run["lm_steps"]) for run in runs}
    if len(settings) != 1:
        raise ValueError(f"the runs differ in (data, max_steps, batch_size, lm_steps): {sorted(settings)}")
    by_model = {}
    for run in runs:
        for row in run["rows"]:
            by_model.setdefault(row["model"], []).append(row)
    if not all(len(by_model.get(name, [])) == len(runs) for name in (EBM, VAE)):
        raise ValueError(f"every run needs a {EBM!r} and a {VAE!r} row")

    table = ["| model | " + " | ".join(label for _, label in METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, rows in by_model.items():
        cells = []
        for key, _ in METRICS:
            values = [row[key] for row in rows if row.get(key) is not None]
            cells.append(mean_and_spread([float(v) for v in values]) if len(values) == len(rows) else "–")
        table.append(f"| {name} | " + " | ".join(cells) + " |")

    differences = [ebm["reverse_ppl"] - vae["reverse_ppl"] for ebm, vae in zip(by_model[EBM], by_model[VAE])]
    wins = sum(difference < 0 for difference in differences)
    collapsed = sum(row["active_units"] == 0 for row in by_model[EBM])
    per_seed = ", ".join(f"{d:+.2f}" for d in differences)
    mean_difference = statistics.mean(differences)
    standard_error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
    max_steps, batch_size = runs[0]["max_steps"], runs[0]["batch_size"]
    body = ("\n".join(table) + f"\n\nMean ± standard deviation over {len(runs)} seeds; each model {max_steps} steps "
            f"of batch {batch_size} on {runs[0]['data']}.\n\n"
            f"Reverse PPL, latent EBM minus VAE, per seed: {per_seed}; mean {mean_difference:+.2f} "
            f"(standard error {standard_error:.2f}). The latent-EBM model is below the VAE on {wins} of "
            f"{len(runs)} seeds and has active units > 0 on {len(runs) - collapsed} of {len(runs)}.\n\n"
            f"Command: `python {' '.join(sys.argv)}`.")
    update_section(args.results_md, args.section,
                   f"Text over {len(runs)} seeds: latent EBM prior vs Gaussian-prior VAE ({max_steps} steps)", body)
    print(body)


if __name__ == "__main__":
    main()
