"""Tabulate a text config sweep (`research/text/text_sweep.sh`): each (config, model) row as mean ± SD over seeds, and each
latent-EBM row's reverse PPL, test NLL and forward PPL minus the Gaussian-prior VAE's, paired by seed (the MLE
latent EBM and the VAE with a latent EBM prior alike).

    python research/text/text_sweep_summary.py runs/text_sweep --section text-sweep
    python research/text/text_sweep_summary.py runs/text_sweep --rescored spread_a.json spread_b.json

--rescored adds `research/text/text_reverse_ppl_spread.py` outputs for the sweep's models (folders
<config>_seed<N>/<learner>-<prior_type>, as text_table.py names them): each run's reverse PPL is then also averaged
over its text_table scoring and these re-scorings, which separates the metric's own noise from the seeds'.
--nll-rescored adds `research/text/text_nll.py` outputs: the test NLL pairing is repeated with each re-scored model's NLL in
place of its text_table one (for the seeds whose latent-EBM model was re-scored), e.g. after a change of the
estimator; they must use the sweep's test sentences and importance samples (any seed).

Files are named <config>_seed<N>.json (text_table.py outputs). Several folders are read together as one sweep (each
(config, seed) in only one of them), so runs filed once under docs/results/text/ can be compared across experiments:

    python research/text/text_sweep_summary.py docs/results/text/fbvae-5250-steps docs/results/text/sweep-5250-steps \\
        --vae-config fbvae --section text-fbvae-5250

All runs must share data, steps, batch and metric settings, so the only differences are the config overrides and the
seed.
"""

import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path

from hf_latent_ebm.utils import update_results_section as update_section
from text_seeds_summary import EBM, VAE, VAE_EBM

METRICS = [("nll", "test NLL ↓", 2), ("forward_ppl", "forward PPL ↓", 2), ("reverse_ppl", "reverse PPL ↓", 2),
           ("active_units", "active units", 1), ("bleu", "recon. BLEU", 3), ("train_time_s", "training (s)", 0)]
# Metrics compared with the VAE seed by seed (lower is better for each).
PAIRED = [("reverse_ppl", "reverse PPL"), ("nll", "test NLL"), ("forward_ppl", "forward PPL")]
# text_table.py saves each row's model in <work dir>/<learner>-<prior_type>.
FOLDER_MODELS = {"mle-ebm": EBM, "vae-gaussian": VAE, "vae_ebm-ebm": VAE_EBM}
# The latent-EBM rows paired with the VAE: the MLE learner and the variational one.
EBM_MODELS = (EBM, VAE_EBM)
SHARED_SETTINGS = ("data", "max_steps", "batch_size", "lm_steps", "num_test", "is_samples", "device")


def mean_and_spread(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def load_sweep(*folders: Path) -> dict[tuple[str, int], dict]:
    """The runs of one or more sweep folders, in file-name order (as if they were one folder)."""
    runs = {}
    for path in sorted((path for folder in folders for path in folder.glob("*_seed*.json")), key=lambda p: p.name):
        match = re.fullmatch(r"(.+)_seed(\d+)\.json", path.name)
        if match:
            key = (match.group(1), int(match.group(2)))
            if key in runs:
                raise ValueError(f"{path.name} is in more than one of {', '.join(map(str, folders))}")
            runs[key] = json.loads(path.read_text())
    if not runs:
        raise ValueError(f"no <config>_seed<N>.json files in {', '.join(map(str, folders))}")
    settings = {tuple(run.get(key) for key in SHARED_SETTINGS) for run in runs.values()}
    if len(settings) != 1:
        raise ValueError(f"the runs differ in {SHARED_SETTINGS}: {sorted(map(str, settings))}")
    return runs


def paired_line(label: str, seeds: list[int], differences: list[float]) -> str:
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
    return (f"- {label}: " + ", ".join(f"{d:+.2f}" for d in differences) + f" (seeds {', '.join(map(str, seeds))}); "
            f"mean {statistics.mean(differences):+.2f}, standard error {error:.2f}; "
            f"{sum(d < 0 for d in differences)} of {len(differences)} below 0")


def averaged(rescored: dict, row: dict, key: tuple[str, int, str]) -> float:
    """A run's reverse PPL averaged over its text_table scoring and its re-scorings, if any."""
    return statistics.mean([row["reverse_ppl"], *rescored.get(key, [])])


def load_rescorings(paths: list[Path], lm_steps: int) -> dict[tuple[str, int, str], list[float]]:
    """(config, seed, model) -> the reverse PPLs of the model's own samples in text_reverse_ppl_spread.py outputs."""
    scores = {}
    for path in paths:
        record = json.loads(path.read_text())
        if record["lm_steps"] != lm_steps:
            raise ValueError(f"{path}: reverse LMs trained {record['lm_steps']} steps, the sweep's {lm_steps}")
        for name, values in record["reverse_ppl"].items():
            match = re.search(r"(?:^|/)([^/]+)_seed(\d+)/([^/]+)$", name)  # "(z from ...)" entries do not match
            if match and match.group(3) in FOLDER_MODELS:
                key = (match.group(1), int(match.group(2)), FOLDER_MODELS[match.group(3)])
                scores.setdefault(key, []).extend(values)
    return scores


def load_nll_rescorings(paths: list[Path], runs: dict) -> dict[tuple[str, int, str], float]:
    """(config, seed, model) -> the test NLL text_nll.py gave the model, checked against its run's settings."""
    scores = {}
    for path in paths:
        record = json.loads(path.read_text())
        for name, values in record["models"].items():
            match = re.search(r"(?:^|/)([^/]+)_seed(\d+)/([^/]+)$", name)
            if not (match and match.group(3) in FOLDER_MODELS and (match.group(1), int(match.group(2))) in runs):
                continue
            config, seed = match.group(1), int(match.group(2))
            run = runs[(config, seed)]
            # The seed may differ from the run's: it changes only the estimator's Monte Carlo draws.
            if (record["num_test"], record["is_samples"]) != (run["num_test"], run["is_samples"]):
                raise ValueError(f"{path}: {name} was scored with num_test {record['num_test']}, is_samples "
                                 f"{record['is_samples']}; its run used {run['num_test']}, {run['is_samples']}")
            scores[(config, seed, FOLDER_MODELS[match.group(3)])] = values["nll"]
    return scores


def paired_comparisons(rows: dict, vae_rows: dict, vae_config: str, rescored: dict, nll_rescored: dict) -> list[str]:
    """Each latent-EBM row minus the VAE config's, seed by seed, as lines of the summary."""
    comparisons = []
    for (config, model), by_seed in rows.items():
        seeds = sorted(set(by_seed) & set(vae_rows))
        if model not in EBM_MODELS or not seeds:
            continue
        name = config if model == EBM else f"{config} ({model})"
        for key, label in PAIRED:
            comparisons.append(paired_line(f"{name}, {label}", seeds,
                                           [by_seed[seed][key] - vae_rows[seed][key] for seed in seeds]))
        if rescored:
            counts = sorted({1 + len(rescored.get(key, [])) for seed in seeds
                             for key in ((config, seed, model), (vae_config, seed, VAE))})
            comparisons.append(paired_line(
                f"{name}, reverse PPL averaged over each model's scorings ({'/'.join(map(str, counts))} each)", seeds,
                [averaged(rescored, by_seed[seed], (config, seed, model))
                 - averaged(rescored, vae_rows[seed], (vae_config, seed, VAE))
                 for seed in seeds]))
        nll_seeds = [seed for seed in seeds if (config, seed, model) in nll_rescored]
        if nll_seeds:
            comparisons.append(paired_line(f"{name}, test NLL with the text_nll.py re-scorings", nll_seeds, [
                nll_rescored[(config, seed, model)] - nll_rescored.get((vae_config, seed, VAE), vae_rows[seed]["nll"])
                for seed in nll_seeds]))
        comparisons.append(f"- {name}, active units: " + "/".join(str(by_seed[seed]["active_units"])
                                                                    for seed in seeds))
    return comparisons


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder",
                        help="folders of <config>_seed<N>.json files, read together as one sweep")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--section", default="text-sweep")
    parser.add_argument("--title", default=None)
    parser.add_argument("--note", default="", help="a sentence added after the run settings (e.g. where the "
                        "training ran, when it was not where the scoring ran)")
    parser.add_argument("--rescored", type=Path, nargs="*", default=[])
    parser.add_argument("--nll-rescored", type=Path, nargs="*", default=[])
    parser.add_argument("--vae-config", nargs="+", default=None,
                        help="the VAE config(s) the EBM configs are paired with, when the sweep has several")
    args = parser.parse_args()

    runs = load_sweep(*args.folders)
    rows = {}  # (config, model) -> {seed: row}
    for (config, seed), run in runs.items():
        for row in run["rows"]:
            if row["model"] != "real test data":
                rows.setdefault((config, row["model"]), {})[seed] = row
    table = ["| config | model | " + " | ".join(label for _, label, _ in METRICS) + " | seeds |",
             "|---" * (len(METRICS) + 3) + "|"]
    for (config, model), by_seed in rows.items():
        cells = []
        for key, _, digits in METRICS:
            values = [float(row[key]) for row in by_seed.values() if row.get(key) is not None]
            cells.append(mean_and_spread(values, digits) if values and len(values) == len(by_seed) else "–")
        table.append(f"| {config} | {model} | " + " | ".join(cells) + f" | {len(by_seed)} |")

    vae_configs = sorted(config for config, model in rows if model == VAE)
    if args.vae_config is None and len(vae_configs) > 1:
        raise ValueError(f"VAE configs {vae_configs}: name the one(s) the EBM configs are paired with (--vae-config)")
    for name in args.vae_config or []:
        if name not in vae_configs:
            raise ValueError(f"--vae-config {name!r} is not among the sweep's VAE configs {vae_configs}")
    rescored = load_rescorings(args.rescored, next(iter(runs.values()))["lm_steps"])
    nll_rescored = load_nll_rescorings(args.nll_rescored, runs)
    pairings = []
    for vae_config in args.vae_config or vae_configs[:1] or [None]:
        comparisons = paired_comparisons(rows, rows.get((vae_config, VAE), {}), vae_config, rescored, nll_rescored)
        pairings.append(f"Latent EBM minus VAE ({vae_config}), paired by seed (negative: the EBM is ahead):\n"
                        + ("\n".join(comparisons) or "- no EBM/VAE pairs"))
    first = next(iter(runs.values()))
    overrides = "\n".join(f"- {config}: `{json.dumps(run['config_overrides'])}`"
                          for (config, seed), run in runs.items() if seed == min(s for c, s in runs if c == config))
    body = ("\n".join(table) + f"\n\nMean ± standard deviation over seeds. Every run: {first['max_steps']} steps of "
            f"batch {first['batch_size']} on {first['data']} ({first['device']}), {first['num_test']} test sentences, "
            f"metric LMs trained {first['lm_steps']} steps.{' ' + args.note if args.note else ''}\n\nConfig overrides (on the text defaults at the time of the run):\n{overrides}\n\n"
            + "\n\n".join(pairings) + f"\n\nCommand: `python {shlex.join(sys.argv)}`.")
    update_section(args.results_md, args.section, args.title or f"Text config sweep ({first['max_steps']} steps)", body)
    print(body)


if __name__ == "__main__":
    main()
