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
import statistics
import sys
import time
from pathlib import Path

import torch

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.data import load_image_dataset
from hf_latent_ebm.evaluation import anomaly_auprc
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

PAPER_LEBM = {1: (0.336, 0.008), 4: (0.630, 0.017), 5: (0.619, 0.013), 7: (0.463, 0.009), 9: (0.413, 0.010)}
ICCV2023_JOINT_EBM = {1: 0.722, 4: 0.949, 5: 0.980, 7: 0.941, 9: 0.935}


def split_for_digit(pixel_values, labels, digit, seed):
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_train = int(0.8 * len(order))
    train_indices, test_indices = order[:num_train], order[num_train:]
    train_indices = train_indices[labels[train_indices] != digit]
    return pixel_values[train_indices], pixel_values[test_indices], labels[test_indices]


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

    train_set, test_set = load_image_dataset("mnist", "train"), load_image_dataset("mnist", "test")
    pixel_values = torch.cat([train_set["pixel_values"][:], test_set["pixel_values"][:]])
    labels = torch.cat([train_set["label"][:], test_set["label"][:]])
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
                         "positive_fraction": float((test_labels == digit).float().mean())})
            print(json.dumps(runs[-1]), flush=True)

    summary = {}
    for digit in args.digits:
        scores = [run["auprc"] for run in runs if run["digit"] == digit]
        chance = statistics.mean(run["positive_fraction"] for run in runs if run["digit"] == digit)
        summary[digit] = {"mean": statistics.mean(scores), "std": statistics.pstdev(scores), "n": len(scores),
                          "chance": chance}
    result = {"protocol": "random 80/20 split of the 70k images; train on the 80% without the held-out digit; "
                          "test on the whole 20%, the held-out digit being the positives",
              "device": device_name, "max_steps": args.max_steps, "batch_size": args.batch_size,
              "config": LatentEBMConfig(**overrides).to_diff_dict(), "runs": runs,
              "summary": {str(digit): value for digit, value in summary.items()}}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))

    header = ("| held-out digit | ours (mean ± std) | chance (positive fraction) | Pang et al. 2020 latent EBM | "
              "Cui et al. ICCV 2023 joint EBM |")
    rows = [header, "|---|---|---|---|---|"]
    for digit, value in summary.items():
        paper_mean, paper_std = PAPER_LEBM[digit]
        rows.append(f"| {digit} | {value['mean']:.3f} ± {value['std']:.3f} (n={value['n']}) | {value['chance']:.3f} | "
                    f"{paper_mean:.3f} ± {paper_std:.3f} | {ICCV2023_JOINT_EBM[digit]:.3f} |")
    table = "\n".join(rows)
    command = "python " + " ".join(sys.argv)
    total_time = sum(run["train_time_s"] for run in runs)
    body = (f"{table}\n\nProtocol: {result['protocol']}. Prior: {args.prior_type}; {args.max_steps} steps of batch "
            f"{args.batch_size} per model; device {device_name}; total training time {total_time / 60:.1f} min.\n"
            f"Command: `{command}` (results: `{args.output}`).")
    update_section(args.results_md, f"anomaly-{args.prior_type}", "MNIST anomaly detection (AUPRC)", body)
    print(table)


if __name__ == "__main__":
    main()
