"""Molecule design by sampling with gradual distribution shifting (SGDS; Kong, Pang, Han & Wu, UAI 2023) on a molecule
model with a property head: each round shifts every population member's property target by a step, moves its
latent by Langevin on p(z) p(y + delta | z) from where it was (the chains persist across rounds), decodes, scores
the new molecules with RDKit, keeps the best of old and new, and refits the model on them for one epoch."""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data.molecules import PROPERTY_NAMES, canonical_smiles, molecule_properties


# SGDS's shifts per round (p-logP +1, QED +0.02, SA -0.05 in its multi-objective runs) and ours for the others; the
# sign is the direction: lower SA is easier synthesis.
DEFAULT_SHIFTS = {"penalized_logp": 1.0, "qed": 0.02, "sa": -0.05, "logp": 0.5, "mol_weight": 10.0}


def default_langevin_steps(objective: dict) -> int:
    """SGDS's design chain length: 20 steps when QED is an objective (its targets move by 0.02), else 2."""
    return 20 if "qed" in objective else 2


@dataclass
class DesignResult:
    """
    Args:
        history (`list[dict]`): One record per round (round 0: the start): "round", "top1" .. "top3" (the best
            objective values of the population), "mean_<property>" of the population, and for the round's new
            molecules "valid", "unique" (distinct among the valid ones) and "novel" (valid, not in the reference
            set) as shares of those decoded; a valid molecule with a token the model cannot encode counts as invalid
            (it cannot join the population the model refits on).
        smiles (`list[str]`): The final population, best first (canonical SMILES).
        properties (`dict[str, list[float]]`): Their RDKit properties, in the same order.
        scores (`list[float]`): Their objective values.
    """

    history: list[dict] = field(default_factory=list)
    smiles: list[str] = field(default_factory=list)
    properties: dict[str, list[float]] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)


def check_objective(model, objective: dict[str, float]) -> None:
    """A ValueError unless `objective` maps properties the model's head predicts to non-zero shifts."""
    if not isinstance(objective, dict) or not objective:
        raise ValueError("objective must be a non-empty dict: property -> shift per round (e.g. {'qed': 0.02})")
    unknown = [name for name in objective if name not in PROPERTY_NAMES]
    if unknown:
        raise ValueError(f"unknown property {', '.join(map(repr, unknown))}; the oracles know "
                         f"{', '.join(PROPERTY_NAMES)}")
    unpredicted = [name for name in objective if name not in model.config.property_names]
    if unpredicted:
        raise ValueError(f"the model's property head predicts {model.config.property_names or 'nothing'}, not "
                         f"{', '.join(unpredicted)}: train with those properties")
    if not all(isinstance(shift, (int, float)) and math.isfinite(shift) and shift != 0 for shift in objective.values()):
        raise ValueError(f"every shift must be a finite non-zero number (its sign is the direction), got {objective}")


def objective_scores(model, objective: dict[str, float], properties: dict[str, list[float]]) -> torch.Tensor:
    """One score per molecule, higher = better: a property's value in its shift's direction, or for several the sum
    of the standardised values (the model's saved means and stds) in their directions."""
    if len(objective) == 1:
        (name, shift), = objective.items()
        return torch.tensor(properties[name]) * math.copysign(1.0, shift)
    standardised = model.standardize_properties(properties).cpu()
    names = model.config.property_names
    return sum(standardised[:, names.index(name)] * math.copysign(1.0, shift) for name, shift in objective.items())


def refit_one_epoch(model, optimizer, smiles: list[str], properties: dict[str, list[float]], batch_size: int,
                    generator: torch.Generator) -> None:
    """One epoch of the model's own learner updates (posterior Langevin, the prior's contrastive step and the head's
    regression) on the population, in a seeded order; the last partial batch is dropped as in training."""
    batch = model.molecule_batch(smiles, properties)
    order = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(int(torch.randint(
        2**31, (1,), generator=generator, device=generator.device))))
    model.train()
    for start in range(0, len(smiles) - batch_size + 1, batch_size):
        rows = order[start:start + batch_size].to(model.device)
        output = model(**{name: values[rows] for name, values in batch.items()}, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
    model.eval()


def design_molecules(model, initial_smiles: list[str], objective: dict[str, float], rounds: int = 20,
                     population: int | None = None, langevin_steps: int | None = None, step_size: float = 0.5,
                     refit: bool = True, batch_size: int = 64, reference_smiles: list[str] | None = None,
                     generator: torch.Generator | None = None, progress: bool = True,
                     plot_path: str | Path | None = None) -> DesignResult:
    r"""
    SGDS on `model` (a `LatentEBMForMoleculeGeneration` with a property head over the objective's properties).

    Args:
        model: The molecule model; refitting changes its weights (pass a copy to keep the original).
        initial_smiles (`list[str]`): The design set to start from (valid molecules; their properties are computed
            by the RDKit oracles). The population is its first `population` distinct molecules.
        objective (`dict[str, float]`): Property -> shift of its target per round, the sign giving the direction
            (SGDS: {"penalized_logp": 1.0}, {"qed": 0.02}, or several, e.g. {"qed": 0.05, "sa": -0.05}).
        rounds (`int`, defaults to 20): Shifts.
        population (`int`, *optional*): Molecules kept per round (SGDS: 10k); all the initial ones by default.
        langevin_steps (`int`, *optional*), step_size (`float`, defaults to 0.5): The design chain per round
            (SGDS: 2 steps of 0.5, 20 when QED is an objective: `default_langevin_steps`).
        refit (`bool`, defaults to True): One epoch of learner updates on the kept population per round.
        batch_size (`int`, defaults to 64): The refit's batch size.
        reference_smiles (`list[str]`, *optional*): What "novel" is measured against (the initial set by default;
            pass the training set).
        generator (`torch.Generator`, *optional*): Source of all randomness.
        progress (`bool`, defaults to True): A progress bar over rounds with the best scores.
        plot_path (*optional*): Write the history's curves (top-3, mean properties, shares) as a PNG here.
    """
    check_objective(model, objective)
    langevin_steps = default_langevin_steps(objective) if langevin_steps is None else langevin_steps
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    if langevin_steps < 1 or not step_size > 0 or batch_size < 1:
        raise ValueError(f"langevin_steps and batch_size must be >= 1 and step_size > 0, got {langevin_steps}, "
                         f"{batch_size}, {step_size}")
    canonical = list(dict.fromkeys(form for form in map(canonical_smiles, initial_smiles) if form is not None))
    if not canonical:
        raise ValueError("initial_smiles holds no valid molecule")
    fits = model.encodable(canonical)
    if not all(fits):  # an atom no training molecule had, or too long: the model cannot encode or refit on it
        warnings.warn(f"{fits.count(False)} of {len(canonical)} starting molecules have tokens outside the model's "
                      f"vocabulary or exceed max_length and were left out", UserWarning, stacklevel=2)
        canonical = [form for form, fit in zip(canonical, fits) if fit]
    smiles = canonical[:population] if population else canonical
    if refit and len(smiles) < batch_size:
        raise ValueError(f"the population has {len(smiles)} molecules, fewer than batch_size {batch_size}")
    generator = generator or torch.Generator(device=model.device).manual_seed(0)
    reference = set(filter(None, map(canonical_smiles, reference_smiles))) if reference_smiles else set(canonical)
    names = model.config.property_names
    properties = molecule_properties(smiles)
    model.eval()
    latents = model.posterior_latents(model.molecule_batch(smiles, properties), generator)
    optimizer = model.build_optimizer() if refit else None
    scores = objective_scores(model, objective, properties)
    result = DesignResult(history=[_record(0, scores, properties, objective, None)])
    shifts = torch.tensor([objective.get(name, 0.0) for name in names])
    bar = tqdm(range(1, rounds + 1), desc="design", unit="round", disable=not progress)
    for round_index in bar:
        # Every member's target is its own value shifted by one step; properties outside the objective are left free.
        current = torch.stack([torch.tensor(properties[name]) for name in names], dim=1)
        targets = current + shifts
        targets[:, shifts == 0] = float("nan")
        standardised = model.standardize_properties({name: targets[:, index] for index, name in enumerate(names)})
        moved = model.latents_for_properties(standardised, latents, langevin_steps, step_size, generator)
        forms = [canonical_smiles(text) if text else None for text in model.decode_molecules(moved, generator)]
        # A valid molecule whose canonical form the model cannot encode (a token it never saw) is not kept: the refit
        # trains on the population.
        fits = model.encodable([form or "C" for form in forms])
        forms = [form if fit else None for form, fit in zip(forms, fits)]
        valid = [index for index, form in enumerate(forms) if form is not None]
        distinct = list(dict.fromkeys(forms[index] for index in valid))
        shares = {"valid": len(valid) / len(forms), "unique": len(distinct) / max(len(valid), 1),
                  "novel": sum(form not in reference for form in distinct) / len(forms)}
        # Old and new together, one entry per molecule (a molecule met again keeps its newest latent), best first.
        rows = {form: index for index, form in enumerate(smiles)}
        rows.update({forms[index]: len(smiles) + index for index in valid})
        pool_latents = torch.cat([latents, moved])
        kept = set(smiles)
        fresh = [form for form in rows if form not in kept]
        fresh_properties = molecule_properties(fresh) if fresh else {name: [] for name in PROPERTY_NAMES}
        pool = list(rows)
        pool_properties = {name: properties[name] + fresh_properties[name] for name in properties}
        # `pool` lists the old molecules first, in order, then the fresh ones: the properties line up with it.
        pool_scores = objective_scores(model, objective, pool_properties)
        keep = pool_scores.argsort(descending=True, stable=True)[:len(smiles)].tolist()
        smiles = [pool[index] for index in keep]
        properties = {name: [values[index] for index in keep] for name, values in pool_properties.items()}
        latents = pool_latents[[rows[form] for form in smiles]]
        scores = pool_scores[keep]
        if refit:
            refit_one_epoch(model, optimizer, smiles, properties, batch_size, generator)
        record = _record(round_index, scores, properties, objective, shares)
        result.history.append(record)
        bar.set_postfix({key: f"{record[key]:.3g}" for key in ("top1", "valid")})
    result.smiles, result.properties, result.scores = smiles, properties, scores.tolist()
    if plot_path is not None:
        _plot_history(result.history, objective, Path(plot_path))
    bar.close()
    return result


def _plot_history(history: list[dict], objective: dict, path: Path) -> None:
    from .training import plot_curves

    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["top1", "top2", "top3"] + [f"mean_{name}" for name in objective] + ["valid", "unique", "novel"]
    plot_curves(history, names, path, x="round", linear=tuple(names))


def _record(round_index: int, scores: torch.Tensor, properties: dict, objective: dict, shares: dict | None) -> dict:
    top = scores.sort(descending=True).values[:3].tolist()
    record = {"round": round_index, **{f"top{rank + 1}": value for rank, value in enumerate(top)}}
    record.update({f"mean_{name}": sum(properties[name]) / len(properties[name]) for name in objective})
    if shares:
        record.update(shares)
    return record


__all__ = ["DEFAULT_SHIFTS", "default_langevin_steps", "DesignResult", "design_molecules", "objective_scores", "check_objective", "refit_one_epoch"]
