"""Multimodal generation on PolyMNIST: the energy-based prior against the Gaussian prior under each aggregation of the
encoders (MoE / PoE / MoPoE: the MMVAE / MVAE / MoPoE-VAE family), same networks, same budget, seeds; joint and
cross-modal coherence scored with per-modality digit classifiers trained here (their test accuracy is reported),
per-modality FID for seed 0, sample grids as PNGs; mean ± std over seeds into docs/results.md.

Each trained model is scored twice for cross-modal generation: with z from q's draw (how MMVAE / MoPoE-VAE
generate) and from Langevin on the model's own posterior given the conditioning modalities, started there; the
diversity of one condition's draws is measured against real images of its digit.

Every run's figures go to <out-dir>/<row>-seed<k>/results.json as soon as it ends, and a rerun skips runs that have
one, so the table can be built across sessions.

    python scripts/multimodal_table.py --rows ebm-moe gaussian-moe gaussian-poe gaussian-mopoe --seeds 0 1 2
"""

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_latent_ebm import LatentEBMForMultimodalGeneration, LatentEBMMultimodalConfig
from hf_latent_ebm.data import build_polymnist
from hf_latent_ebm.metrics.fid import FeatureStatistics, frechet_distance, inception_features
from hf_latent_ebm.metrics.coherence import (ModalityClassifiers, cross_coherence, cross_modal_diversity,
                                             joint_coherence)
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments
from hf_latent_ebm.utils import update_results_section

# A row is a prior and an aggregation; the learner follows from the prior (the ELBO, with the energy learned on q's
# samples for the energy-based prior).
ROWS = {f"{prior}-{aggregation}": dict(prior_type=prior, aggregation=aggregation,
                                       learner="vae_ebm" if prior == "ebm" else "vae")
        for prior in ("ebm", "gaussian") for aggregation in ("moe", "poe", "mopoe")}
MODE_NAMES = {"encoder": "q's draw", "posterior": "posterior Langevin"}
PUBLISHED = ("For scale only (their backgrounds differ): MoPoE-VAE joint coherence ~0.66-0.68 and cross-modal "
             "~0.68-0.83 (Sutter et al. 2021), MMVAE+ ~0.87 (Palumbo et al. 2023)")


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def modality_arrays(dataset, names) -> dict:
    rows = dataset.with_format("numpy", dtype=np.uint8)[:]
    return {name: rows[name] for name in names}, dataset.with_format("numpy")["label"][:].astype(np.int64)


def load_classifiers(args, train, test, names) -> tuple[ModalityClassifiers, dict]:
    """Per-modality digit classifiers, trained once on the training split and cached; their test accuracies."""
    folder = Path(args.out_dir) / "classifiers"
    if (folder / "classifiers.json").exists():
        classifiers = ModalityClassifiers.load(folder)
    else:
        values, labels = modality_arrays(train, names)
        started = time.time()
        classifiers = ModalityClassifiers.train(
            {name: ("image", torch.from_numpy(values[name]), torch.from_numpy(labels)) for name in names},
            num_labels=10, seed=0)
        print(f"classifiers trained in {time.time() - started:.0f} s", flush=True)
        classifiers.save(folder)
    values, labels = modality_arrays(test, names)
    accuracy = {name: round(classifiers.accuracy(name, torch.from_numpy(values[name]), torch.from_numpy(labels)), 4)
                for name in names}
    return classifiers, accuracy


def real_statistics(args, test, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inception mean and covariance of the first --fid-samples test images of a modality, computed once and kept in
    <out-dir> (every row is scored against the same ones)."""
    path = Path(args.out_dir) / f"fid_real_{name}_{args.fid_samples}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    real, _ = modality_arrays(test.select(range(args.fid_samples)), [name])
    statistics_ = FeatureStatistics()
    statistics_.update(inception_features(torch.from_numpy(real[name])))
    moments = statistics_.mean_and_covariance()
    torch.save(moments, path)
    return moments


def modality_fid(args, test, name: str, samples: torch.Tensor) -> float:
    fake = FeatureStatistics()
    fake.update(inception_features(samples))
    return frechet_distance(*real_statistics(args, test, name), *fake.mean_and_covariance())


def add_fid(result: dict, model, args, test) -> None:
    """Per-modality FID of --fid-samples joint samples (seed 1) against the cached test statistics, into `result`."""
    samples = model.generate(args.fid_samples, generator=torch.Generator(device=model.device).manual_seed(1))
    result["fid"] = {name: round(modality_fid(args, test, name, samples[name]), 2) for name in model.modality_names}
    result["fid_samples"] = args.fid_samples


def evaluate_cross_modal(model, mode: str, args, values: dict, labels: np.ndarray, test, classifiers, seed: int) -> dict:
    """Cross-modal coherence from one and from four modalities, and the diversity of m0 -> m1..m4 draws (10 draws
    of each of one test example per digit) against real images of the digit, with z drawn as `mode` says
    ("encoder": q's draw, as before; "posterior": Langevin on p(z | given) from q's draws)."""
    model.config.cross_modal_sampling = mode
    names = list(model.modality_names)
    generator = torch.Generator(device=model.device).manual_seed(seed + 200)
    subsets = [[name] for name in names] + [[n for n in names if n != left_out] for left_out in names]
    started = time.time()
    cross = cross_coherence(model, classifiers, {name: torch.from_numpy(values[name]) for name in names},
                            torch.from_numpy(labels), subsets=subsets, generator=generator)
    # One condition per digit (the first of each in the test split), real images from the rest of the split.
    all_values, all_labels = modality_arrays(test, names)
    firsts = [int(np.flatnonzero(all_labels == digit)[0]) for digit in range(10)]
    rest = np.setdiff1d(np.arange(len(all_labels)), firsts)
    diversity = cross_modal_diversity(
        model, {"m0": torch.from_numpy(all_values["m0"][firsts])}, torch.from_numpy(all_labels[firsts]),
        {name: (torch.from_numpy(all_values[name][rest]), torch.from_numpy(all_labels[rest])) for name in names[1:]},
        num_draws=10, generator=generator)
    return {"cross_coherence_from_1": cross["mean_by_size"][1], "cross_coherence_from_4": cross["mean_by_size"][4],
            "cross_by_subset": cross["by_subset"], "diversity_from_m0": diversity["ratio"],
            "diversity_by_target": diversity["by_target"], "eval_seconds": round(time.time() - started, 1)}


def run(row: str, seed: int, args, train, test, classifiers) -> dict:
    folder = Path(args.out_dir) / f"{row}-seed{seed}"
    results_file = folder / "results.json"
    if results_file.exists():
        result = json.loads(results_file.read_text())
        if seed == 0 and args.fid_samples and "fid" not in result:  # a later pass adds the FID column
            add_fid(result, LatentEBMForMultimodalGeneration.from_pretrained(folder).to(args.device).eval(), args,
                    test)
            results_file.write_text(json.dumps(result, indent=2))
        return result
    trained_file = folder / "trained.json"
    if trained_file.exists():  # trained by an earlier, interrupted invocation: evaluate the saved model
        model = LatentEBMForMultimodalGeneration.from_pretrained(folder).to(args.device)
        trained = json.loads(trained_file.read_text())
    else:
        torch.manual_seed(seed)
        config = LatentEBMMultimodalConfig(**ROWS[row], **json.loads(args.config_overrides))
        model = LatentEBMForMultimodalGeneration(config).to(args.device)
        data = model.prepare_dataset(train)
        training = TrainingArguments(output_dir=str(folder), max_steps=args.steps, batch_size=args.batch_size,
                                     seed=seed, sample_every=0, checkpoint_every=0, num_grid_samples=16)
        started = time.time()
        final = LatentEBMTrainer(model, data, training).train()
        trained = {"train_seconds": round(time.time() - started, 1),
                   "final_losses": {k: v for k, v in final.items() if k != "step"}}
        trained_file.write_text(json.dumps(trained))
    model.eval()
    if args.posterior_steps:
        model.config.cross_modal_langevin_steps = args.posterior_steps
    names = list(model.modality_names)
    values, labels = modality_arrays(test.select(range(args.num_cross)), names)
    generator = torch.Generator(device=model.device).manual_seed(seed + 100)
    joint = joint_coherence(model, classifiers, args.num_joint, generator=generator)
    result = {"row": row, "seed": seed, "joint_coherence": joint, **trained, "steps": args.steps,
              "batch_size": args.batch_size, "device": device_name(args.device), "sampling": {}}
    for mode in args.sampling:
        result["sampling"][mode] = evaluate_cross_modal(model, mode, args, values, labels, test, classifiers, seed)
    if seed == 0:
        model.write_samples(folder / "joint.png", 12, torch.Generator(device=model.device).manual_seed(0))
        for mode in args.sampling:
            model.config.cross_modal_sampling = mode
            model.write_cross_modal_grid(folder / f"cross_from_m0_{mode}.png",
                                         {"m0": torch.from_numpy(values["m0"][:6])},
                                         generator=torch.Generator(device=model.device).manual_seed(0))
        if args.fid_samples:
            add_fid(result, model, args, test)
    results_file.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "sampling"}), flush=True)
    return result


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(results: dict, accuracy: dict, args) -> str:
    lines = ["| prior | aggregation | joint coherence | cross-modal sampling | cross-modal, from 1 | cross-modal, from 4 | "
             "diversity m0 -> others | FID m0..m4 (seed 0) | seeds | training time per run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row, runs in results.items():
        prior, aggregation = row.split("-")
        fids = runs[0].get("fid") if runs and runs[0]["seed"] == 0 else None
        for index, mode in enumerate(args.sampling):
            scores = [r["sampling"][mode] for r in runs]
            head = (f"| {'energy-based' if prior == 'ebm' else 'Gaussian'} | {aggregation.upper()} | "
                    f"{mean_std([r['joint_coherence'] for r in runs])} |" if index == 0 else "| | | |")
            tail = (f" {' / '.join(f'{v:.0f}' for v in fids.values()) if fids else '-'} | {len(runs)} | "
                    f"{statistics.mean(r['train_seconds'] for r in runs) / 60:.1f} min |" if index == 0 else " | | |")
            lines.append(f"{head} {MODE_NAMES[mode]} | {mean_std([s['cross_coherence_from_1'] for s in scores])} | "
                         f"{mean_std([s['cross_coherence_from_4'] for s in scores])} | "
                         f"{mean_std([s['diversity_from_m0'] for s in scores])} |{tail}")
    device = " or ".join(sorted({r["device"] for runs in results.values() for r in runs}))
    fid_samples = next((r["fid_samples"] for runs in results.values() for r in runs if "fid_samples" in r), 0)
    accuracies = ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items())
    return ("\n".join(lines) + f"\n\nPolyMNIST (our backgrounds: `skimage.data` astronaut, coffee, chelsea, rocket, "
            f"immunohistochemistry), {args.steps} steps of batch {args.batch_size} per run on {device}; joint coherence "
            f"on {args.num_joint} joint samples; cross-modal coherence on {args.num_cross} test examples, from each "
            f"single modality and from each four to the rest, with z from q's draw (\"encoder\", how the model "
            f"generated before) or from Langevin on the model's p(z | given) started there (\"posterior\", "
            f"{args.posterior_steps or LatentEBMMultimodalConfig().cross_modal_langevin_steps} steps); diversity: 10 draws of m1..m4 from the m0 of one test example per digit, "
            f"their mean pairwise pixel distance over that of 10 real images of the digit (1 = as varied as the "
            f"data). FID per modality on {fid_samples} joint samples against as many test images (a small sample: FID's "
            f"bias at this size is large, so compare rows, not papers). Digit classifiers' test accuracy: "
            f"{accuracies}. {PUBLISHED}.\n\n```bash\n{args.command}\n```\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=["ebm-moe", "gaussian-moe", "gaussian-poe", "gaussian-mopoe"],
                        choices=sorted(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=None, help="the first N training examples (default all)")
    parser.add_argument("--num-joint", type=int, default=1000)
    parser.add_argument("--num-cross", type=int, default=500)
    parser.add_argument("--fid-samples", type=int, default=200, help="0 skips FID")
    parser.add_argument("--config-overrides", default="{}")
    parser.add_argument("--sampling", nargs="+", default=["encoder", "posterior"], choices=sorted(MODE_NAMES),
                        help="cross-modal sampling modes to score each trained model with")
    parser.add_argument("--posterior-steps", type=int, default=None,
                        help="steps of the posterior chain (default: the config's cross_modal_langevin_steps)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out-dir", default="runs/multimodal_table")
    parser.add_argument("--results", default="docs/results/multimodal/polymnist-table/multimodal_polymnist.json")
    parser.add_argument("--tag", default="polymnist", help="the docs/results.md section")
    parser.add_argument("--finished-only", action="store_true",
                        help="build the table from the runs that have finished (each row says its number of seeds)")
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "scripts/multimodal_table.py", *(sys.argv[1:] if argv is None else argv)])
    train = build_polymnist("train", num_examples=args.num_train)
    test = build_polymnist("test")
    names = [f"m{index}" for index in range(5)]
    classifiers, accuracy = load_classifiers(args, train, test, names)
    print(f"classifier test accuracy: {accuracy}", flush=True)
    results = {row: [] for row in args.rows}
    for seed in args.seeds:  # every row's first seed before any row's second: an interrupted table is still a table
        for row in args.rows:
            if args.finished_only and not (Path(args.out_dir) / f"{row}-seed{seed}" / "results.json").exists():
                continue
            results[row].append(run(row, seed, args, train, test, classifiers))
    results = {row: runs for row, runs in results.items() if runs}
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": args.command, "classifier_accuracy": accuracy,
                                "runs": {row: [{k: v for k, v in r.items() if k != "cross_by_subset"} for r in runs]
                                         for row, runs in results.items()}}, indent=2))
    update_results_section("docs/results.md", f"multimodal_{args.tag}", "Multimodal generation: PolyMNIST coherence",
                           table(results, accuracy, args))
    print(table(results, accuracy, args))


if __name__ == "__main__":
    main()
