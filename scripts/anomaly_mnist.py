"""MNIST anomaly detection with one digit held out (Pang et al. 2020, Table 3).

Protocol (that of Zenati et al. 2018 and Kumar et al. 2019, which the paper follows): the 70k MNIST images are
split 80/20 at random (by the seed); for each held-out digit d the model trains on the 80% part without d, and the
test set is the whole 20% part, in which d is the anomaly (about 10% of it). The score is `model.anomaly_score` (-log p(x, z+) at a
posterior Langevin sample) and the metric is AUPRC with d as the positive class, reported as mean and std over
seeds. Writes a results JSON and the table into docs/results.md.

    python scripts/anomaly_mnist.py --max-steps 20000 --device cuda           # the full protocol
    python scripts/anomaly_mnist.py --digits 1 9 --seeds 0 --max-steps 300    # a CPU smoke run
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.evaluation import (ANOMALY_PROTOCOL, anomaly_auprc, anomaly_markdown_table, load_mnist_70k,
                                      split_for_digit, summarize_anomaly_runs)
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, nargs="+", default=[1, 4, 5, 7, 9])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prior-type", default="ebm", choices=("ebm", "gaussian"))
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMConfig fields")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", default="runs/anomaly_mnist")
    parser.add_argument("--output", default="docs/results/image/anomaly-mnist/anomaly_mnist.json")
    parser.add_argument("--results-md", default="docs/results.md")
    args = parser.parse_args()

    pixel_values, labels = load_mnist_70k()
    overrides = {"prior_type": args.prior_type, **json.loads(args.config_overrides)}
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    runs = []
    for digit in args.digits:
        for seed in args.seeds:
            train_images, test_images, test_labels = split_for_digit(pixel_values, labels, digit, seed)
            torch.manual_seed(seed)
            model = LatentEBMForImageGeneration(LatentEBMConfig(**overrides)).to(args.device)
            training_args = TrainingArguments(output_dir=f"{args.work_dir}/digit{digit}-seed{seed}",
                                              max_steps=args.max_steps, batch_size=args.batch_size, seed=seed,
                                              sample_every=0, checkpoint_every=0)
            started = time.time()
            LatentEBMTrainer(model, train_images, training_args).train()
            train_time = time.time() - started
            model.eval()
            score = anomaly_auprc(model, test_images, test_labels, digit, seed)
            runs.append({"digit": digit, "seed": seed, "auprc": score, "train_time_s": round(train_time, 1),
                         "positive_fraction": float((test_labels == digit).float().mean()), "device": device_name})
            print(json.dumps(runs[-1]), flush=True)

    summary = summarize_anomaly_runs(runs)
    result = {"protocol": ANOMALY_PROTOCOL, "device": device_name, "max_steps": args.max_steps,
              "batch_size": args.batch_size, "config": LatentEBMConfig(**overrides).to_diff_dict(), "runs": runs,
              "summary": {str(digit): value for digit, value in summary.items()}}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))

    table = anomaly_markdown_table(summary)
    command = "python " + " ".join(sys.argv)
    total_time = sum(run["train_time_s"] for run in runs)
    body = (f"{table}\n\nProtocol: {result['protocol']}. Prior: {args.prior_type}; {args.max_steps} steps of batch "
            f"{args.batch_size} per model; device {device_name}; total training time {total_time / 60:.1f} min.\n"
            f"Command: `{command}` (results: `{args.output}`).")
    update_section(args.results_md, f"anomaly-{args.prior_type}", "MNIST anomaly detection (AUPRC)", body)
    print(table)


if __name__ == "__main__":
    main()
