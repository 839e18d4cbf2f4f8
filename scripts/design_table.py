"""SGDS design runs (issue 35, item 5) on a molecule model with a property head, beside the simple alternative a
user would try first: generate-and-filter, which draws as many molecules per round from the same model's prior
(no target, no refit), scores them with the same RDKit oracles and keeps the best of old and new. Both start from the
same population and call the oracles equally often, so the top-3 curves compare the shifting, not the budget.

    hf-latent-ebm train --task smiles --limit-examples 20000 --properties qed,penalized_logp,sa --max-steps 600 \
        --sample-every 0 --output-dir runs/design_model_selfies --config-overrides \
        '{"representation": "selfies", "decoder_config": {"embedding_dim": 64, "hidden_dim": 128, "dropout": 0.2}}'
    python scripts/design_table.py --model runs/design_model_selfies --objective qed --objective penalized_logp \
        --objective qed:0.05,sa:-0.05 --rounds 20 --population 500

SELFIES, as SGDS's own code uses: a SMILES model at this CPU budget decodes about 5% valid molecules per design round,
so its population barely changes.
"""

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from hf_latent_ebm.cli.molecules import parse_objective


def generate_and_filter(model, initial: list[str], objective: dict, rounds: int, population: int,
                        generator: torch.Generator) -> list[dict]:
    """The baseline: each round `population` prior samples join the population, which keeps its best `population`."""
    from hf_latent_ebm.data.molecules import canonical_smiles, molecule_properties
    from hf_latent_ebm.molecule_design import objective_scores

    smiles = list(dict.fromkeys(filter(None, map(canonical_smiles, initial))))[:population]
    properties = molecule_properties(smiles)
    history = [{**top_record(0, objective_scores(model, objective, properties)),
                **{f"mean_{name}": sum(properties[name]) / len(properties[name]) for name in objective}}]
    for round_index in range(1, rounds + 1):
        drawn = [canonical_smiles(text) if text else None for text in model.generate_smiles(population, generator)]
        kept = set(smiles)
        fresh = [form for form in dict.fromkeys(filter(None, drawn)) if form not in kept]
        pool = smiles + fresh
        fresh_properties = molecule_properties(fresh) if fresh else {name: [] for name in properties}
        pool_properties = {name: properties[name] + fresh_properties[name] for name in properties}
        scores = objective_scores(model, objective, pool_properties)
        keep = scores.argsort(descending=True, stable=True)[:population].tolist()
        smiles = [pool[index] for index in keep]
        properties = {name: [values[index] for index in keep] for name, values in pool_properties.items()}
        history.append({**top_record(round_index, scores[keep]),
                        **{f"mean_{name}": sum(properties[name]) / len(properties[name]) for name in objective},
                        "valid": sum(form is not None for form in drawn) / len(drawn)})
    return history


def top_record(round_index: int, scores: torch.Tensor) -> dict:
    top = scores.sort(descending=True).values[:3].tolist()
    return {"round": round_index, **{f"top{rank + 1}": value for rank, value in enumerate(top)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--objective", action="append", required=True,
                        help="a property (SGDS's shift) or property:shift pairs joined by commas")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="docs/results/molecules/sgds/design_table.json")
    parser.add_argument("--section", default="docs/results.md", help="the results file whose design section to update")
    args = parser.parse_args()

    from transformers import AutoModel

    from hf_latent_ebm.data.molecules import load_moses
    from hf_latent_ebm.molecule_design import design_molecules

    base = AutoModel.from_pretrained(args.model).eval()
    # The design set: molecules the model never trained on (MOSES test), as SGDS starts from its data set.
    initial = list(load_moses("test", limit=args.population, seed=args.seed)["smiles"])
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    for text in args.objective:
        names = ",".join(part.split(":")[0] for part in text.split(","))
        shifts = ",".join(part.split(":")[1] for part in text.split(",")) if ":" in text else None
        objective = parse_objective(names, shifts)
        key = ",".join(f"{name}:{shift:+g}" for name, shift in objective.items())
        started = time.time()
        sgds = design_molecules(copy.deepcopy(base), initial, objective, rounds=args.rounds, population=args.population,
                                generator=torch.Generator().manual_seed(args.seed),
                                plot_path=output.with_name(f"design_{names.replace(',', '_')}.png"))
        sgds_s = time.time() - started
        started = time.time()
        baseline = generate_and_filter(base, initial, objective, args.rounds, args.population,
                                       torch.Generator().manual_seed(args.seed))
        results[key] = {"objective": objective, "sgds": sgds.history, "generate_and_filter": baseline,
                        "sgds_top": sgds.smiles[:5], "sgds_s": round(sgds_s, 1),
                        "baseline_s": round(time.time() - started, 1),
                        "settings": {"model": args.model, "rounds": args.rounds, "population": args.population,
                                     "seed": args.seed, "device": "cpu"}}
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2))
        first, last, other = sgds.history[0], sgds.history[-1], baseline[-1]
        print(f"{key}: SGDS top-3 {[round(first[f'top{k}'], 3) for k in (1, 2, 3)]} -> "
              f"{[round(last[f'top{k}'], 3) for k in (1, 2, 3)]}; generate-and-filter -> "
              f"{[round(other[f'top{k}'], 3) for k in (1, 2, 3)]}", flush=True)
    write_section(results, args.section)


def write_section(results: dict, path: str) -> None:
    from hf_latent_ebm.utils import update_results_section

    top3 = lambda record: ", ".join(f"{record[f'top{k}']:.3f}" for k in (1, 2, 3))  # noqa: E731
    lines = ["| objective (shift per round) | start: top-3 | SGDS, last round: top-3 | generate-and-filter, last "
             "round: top-3 | population mean, start / SGDS / generate-and-filter | SGDS: rounds whose top-1 rose | "
             "SGDS: valid / novel per round (mean) | time SGDS / baseline (s) |", "|---|---|---|---|---|---|---|---|"]
    for key, run in results.items():
        sgds, baseline = run["sgds"], run["generate_and_filter"]
        rose = sum(after["top1"] > before["top1"] for before, after in zip(sgds, sgds[1:]))
        valid = sum(record["valid"] for record in sgds[1:]) / (len(sgds) - 1)
        novel = sum(record["novel"] for record in sgds[1:]) / (len(sgds) - 1)
        means = "; ".join(f"{name}: {sgds[0][f'mean_{name}']:.3f} / {sgds[-1][f'mean_{name}']:.3f} / "
                          f"{baseline[-1].get(f'mean_{name}', float('nan')):.3f}" for name in run["objective"])
        lines.append(f"| {key} | {top3(sgds[0])} | {top3(sgds[-1])} | {top3(baseline[-1])} | {means} | {rose} of "
                     f"{len(sgds) - 1} | {valid:.3f} / {novel:.3f} | {run['sgds_s']:.0f} / {run['baseline_s']:.0f} |")
    settings = next(iter(results.values()))["settings"]
    body = "\n".join(lines) + (
        f"\n\nModel `{settings['model']}`, population {settings['population']} (SGDS: 10k), {settings['rounds']} "
        f"rounds, seed {settings['seed']}, this project's 2-core CPU; the start population is MOSES test molecules. "
        "Scores: the property itself for one objective; for several, the sum of the standardised properties in their "
        "directions. Command: see `scripts/design_table.py`'s docstring; raw histories: "
        "`docs/results/molecules/sgds/design_table.json`, curves: `design_<objective>.png` beside it.")
    update_results_section(path, "design_table", "Molecules: design by gradual distribution shifting (SGDS)", body)


if __name__ == "__main__":
    main()
