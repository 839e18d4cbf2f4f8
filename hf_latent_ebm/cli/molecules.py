"""`hf-latent-ebm design`: property-driven molecule design (SGDS) with a trained molecule model's property head."""

import argparse
import csv
import io
import json
from pathlib import Path

import torch


def add_molecule_commands(commands) -> None:
    design = commands.add_parser(
        "design", help="design molecules with a molecule model's property head (SGDS)",
        description="Sampling with gradual distribution shifting (Kong et al. 2023): every round shifts each "
                    "population member's property target by --shift, moves its latent by Langevin on "
                    "p(z) p(y + shift | z), decodes, scores the new molecules with RDKit, keeps the best "
                    "--population of old and new, and refits the model on them for one epoch. Writes "
                    "design_history.json, design_rounds.png and designed.csv (the final population, best first) "
                    "into --output-dir.")
    design.add_argument("--model", required=True, help="a molecule model trained with --properties")
    design.add_argument("--property", required=True,
                        help="the property to raise or lower, or several comma-separated (multi-objective): qed, "
                             "penalized_logp, logp, sa, mol_weight")
    design.add_argument("--shift", default=None,
                        help="the target's shift per round for each property, comma-separated (sign = direction; "
                             "default SGDS's: qed +0.02, penalized_logp +1, sa -0.05, logp +0.5, mol_weight +10)")
    design.add_argument("--rounds", type=int, default=20)
    design.add_argument("--population", type=int, default=1000, help="molecules kept each round (SGDS: 10k)")
    design.add_argument("--data", default=None,
                        help="the initial design set, a .smi/.txt/.csv file (default: a seeded MOSES training subset "
                             "of --population molecules)")
    design.add_argument("--langevin-steps", type=int, default=None,
                        help="design chain steps per round (default SGDS's: 20 with qed, else 2)")
    design.add_argument("--step-size", type=float, default=0.5)
    design.add_argument("--batch-size", type=int, default=64, help="the refit's batch size")
    design.add_argument("--no-refit", action="store_true", help="keep the model fixed (no refit epochs)")
    design.add_argument("--output-dir", default="design")
    design.add_argument("--seed", type=int, default=0)
    design.set_defaults(handler=_design)


def parse_objective(properties: str, shifts: str | None) -> dict[str, float]:
    """{"qed": 0.02, ...} from --property and --shift (SGDS's default shifts where --shift is not given)."""
    from ..molecule_design import DEFAULT_SHIFTS

    names = [name.strip() for name in properties.split(",") if name.strip()]
    unknown = [name for name in names if name not in DEFAULT_SHIFTS]
    if not names or unknown:
        raise ValueError(f"unknown property {', '.join(map(repr, unknown)) or repr(properties)}; the oracles know "
                         f"{', '.join(DEFAULT_SHIFTS)}")
    if shifts is None:
        return {name: DEFAULT_SHIFTS[name] for name in names}
    try:
        values = [float(value) for value in shifts.split(",")]
    except ValueError:
        raise ValueError(f"--shift must be numbers separated by commas, got {shifts!r}") from None
    if len(values) != len(names):
        raise ValueError(f"--shift has {len(values)} value(s) for {len(names)} propert(ies) {names}")
    return dict(zip(names, values))


def _design(args: argparse.Namespace) -> None:
    from transformers import AutoModel

    from ..checkpointing import replace_file_atomically
    from ..data.molecules import load_moses, read_smiles_file
    from ..molecule_design import design_molecules

    objective = parse_objective(args.property, args.shift)
    if args.rounds < 1 or args.population < 1:
        raise ValueError(f"--rounds and --population must be >= 1, got {args.rounds} and {args.population}")
    model = AutoModel.from_pretrained(args.model)
    if not hasattr(model, "property_head"):
        raise ValueError(f"{args.model} is a {type(model).__name__}, not a molecule model")
    model.property_head  # a model without a head is refused here, before any data is read
    if args.data:
        initial, _ = read_smiles_file(args.data)
    else:
        initial = list(load_moses("train", limit=args.population, seed=args.seed)["smiles"])
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    result = design_molecules(model, initial, objective, rounds=args.rounds, population=args.population,
                              langevin_steps=args.langevin_steps, step_size=args.step_size,
                              refit=not args.no_refit, batch_size=args.batch_size,
                              generator=torch.Generator(device=model.device).manual_seed(args.seed),
                              plot_path=output / "design_rounds.png")
    replace_file_atomically(output / "design_history.json", json.dumps(
        {"objective": objective, "model": args.model, "seed": args.seed, "history": result.history}, indent=2))
    names = list(result.properties)
    rows = [[smiles, score, *(result.properties[name][index] for name in names)]
            for index, (smiles, score) in enumerate(zip(result.smiles, result.scores))]
    table = io.StringIO()
    csv.writer(table).writerows([["smiles", "score", *names], *rows])
    replace_file_atomically(output / "designed.csv", table.getvalue())
    first, last = result.history[0], result.history[-1]
    print(f"top-3 from {[round(first[f'top{k}'], 3) for k in (1, 2, 3)]} to "
          f"{[round(last[f'top{k}'], 3) for k in (1, 2, 3)]} after {args.rounds} rounds; written to {output}")


__all__ = ["add_molecule_commands", "parse_objective"]
