"""Anomaly detection with one class held out (Pang et al. 2020, Table 3; Cui et al. ICCV 2023, Table 3).

Protocol (that of Zenati et al. 2018 and Kumar et al. 2019, which the papers follow): the 70k images of MNIST (or
Fashion-MNIST, `--dataset`) are split 80/20 at random (by the seed); for each held-out class d every model trains on
the 80% part without d, and the test set is the whole 20% part, in which d is the anomaly (about 10% of it). A
model's score is `model.anomaly_score` (-log p(x, z) at z inferred as its learner infers it: a posterior Langevin
sample, or a draw of q(z | x) for the variational learners, as ICCV 2023) and the metric is AUPRC with d as the
positive class, mean and std over seeds. Each variant (`--variants NAME=JSON`, config overrides or a "preset") is
trained on the same split with the same budget, and a PCA row (reconstruction error from `--pca-components`
components of the same training images) is scored on the same test set. Writes a results JSON and the table into
docs/results.md (section --section).

    python scripts/anomaly_mnist.py --max-steps 20000 --device cuda           # the full protocol, latent EBM
    python scripts/anomaly_mnist.py --digits 1 9 --seeds 0 --max-steps 300    # a CPU smoke run
    python scripts/anomaly_mnist.py --variants 'lebm={}' \\
        'hierarchical={"preset": "hierarchical", "layer_sizes": [2, 2, 2, 10], "variational": true}' \\
        --section anomaly-hierarchical                                          # the hierarchical table
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from hf_latent_ebm.utils import merge_config_kwargs, update_results_section as update_section

from hf_latent_ebm.evaluation import (ANOMALY_PROTOCOL, anomaly_auprc, anomaly_comparison_table,
                                      anomaly_markdown_table, image_config, load_mnist_70k,
                                      parse_variants, pca_reconstruction_scores, split_for_digit,
                                      summarize_anomaly_runs)
from hf_latent_ebm.metrics.anomaly import auprc
from hf_latent_ebm import LatentEBMForImageGeneration
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--digits", type=int, nargs="+", default=[1, 4, 5, 7, 9], help="the held-out classes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prior-type", default="ebm", choices=("ebm", "gaussian"),
                        help="the one model's prior when --variants is not given")
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMConfig fields")
    parser.add_argument("--variants", nargs="+", metavar="NAME=JSON",
                        help="models by name and their config overrides (a \"preset\" key picks a preset)")
    parser.add_argument("--pca-components", type=int, default=16, help="0 leaves the PCA row out")
    parser.add_argument("--section", help="the docs/results.md section (default anomaly-<prior-type>)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", default="runs/anomaly_mnist")
    parser.add_argument("--output", default="docs/results/image/anomaly-mnist/anomaly_mnist.json")
    parser.add_argument("--results-md", default="docs/results.md")
    args = parser.parse_args()

    try:
        base = json.loads(args.config_overrides)
        variants = (parse_variants(args.variants) if args.variants
                    else {args.prior_type: {"prior_type": args.prior_type}})
        # Every row's config is built (and checked) before any training.
        configs = {name: image_config(merge_config_kwargs(base, overrides)) for name, overrides in variants.items()}
    except ValueError as error:  # json's errors are ValueErrors too
        parser.error(str(error))
    pixel_values, labels = load_mnist_70k(args.dataset)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    runs = {name: [] for name in [*variants, *(["PCA"] if args.pca_components else [])]}
    for digit in args.digits:
        for seed in args.seeds:
            train_images, test_images, test_labels = split_for_digit(pixel_values, labels, digit, seed)
            common = {"digit": digit, "seed": seed, "device": device_name,
                      "positive_fraction": float((test_labels == digit).float().mean())}
            for name, config in configs.items():
                torch.manual_seed(seed)
                model = LatentEBMForImageGeneration(config).to(args.device)
                training_args = TrainingArguments(output_dir=f"{args.work_dir}/{args.dataset}-{name}-class{digit}"
                                                             f"-seed{seed}", max_steps=args.max_steps,
                                                  batch_size=args.batch_size, seed=seed, sample_every=0,
                                                  checkpoint_every=0)
                started = time.time()
                LatentEBMTrainer(model, train_images, training_args).train()
                train_time = time.time() - started
                model.eval()
                score = anomaly_auprc(model, test_images, test_labels, digit, seed)
                runs[name].append({**common, "model": name, "auprc": score, "train_time_s": round(train_time, 1)})
                print(json.dumps(runs[name][-1]), flush=True)
            if args.pca_components:
                started = time.time()
                scores = pca_reconstruction_scores(train_images, test_images, args.pca_components)
                runs["PCA"].append({**common, "model": "PCA", "auprc": auprc(scores, test_labels == digit),
                                    "train_time_s": round(time.time() - started, 1)})
                print(json.dumps(runs["PCA"][-1]), flush=True)

    summaries = {name: summarize_anomaly_runs(model_runs) for name, model_runs in runs.items()}
    result = {"protocol": ANOMALY_PROTOCOL, "dataset": args.dataset, "device": device_name,
              "max_steps": args.max_steps, "batch_size": args.batch_size, "pca_components": args.pca_components,
              "configs": {name: config.to_diff_dict() for name, config in configs.items()},
              "runs": [run for model_runs in runs.values() for run in model_runs],
              "summary": {name: {str(label): value for label, value in summary.items()}
                          for name, summary in summaries.items()}}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))

    command = "python " + shlex.join(sys.argv)
    times = ", ".join(f"{name} {sum(run['train_time_s'] for run in model_runs) / 60:.1f} min"
                      for name, model_runs in runs.items())
    if args.variants:
        table = anomaly_comparison_table(summaries, papers=args.dataset == "mnist")
        title = f"{args.dataset} anomaly detection (AUPRC): " + " vs ".join(runs)
    else:
        table = anomaly_markdown_table(summaries[args.prior_type])
        title = "MNIST anomaly detection (AUPRC)"
    budget = (" The papers' columns are at their budgets (Pang et al. 2020 and Cui et al. 2023 train for 100 to 200 "
              "epochs, about 100 times these runs' updates)." if args.variants and args.dataset == "mnist" else "")
    body = (f"{table}\n\nProtocol: {ANOMALY_PROTOCOL} ({args.dataset}). Seeds {args.seeds}; {args.max_steps} steps "
            f"of batch {args.batch_size} per model, the same split and budget for every model; PCA with "
            f"{args.pca_components} components; device {device_name}; total training time: {times}.{budget}\n"
            f"Command: `{command}` (results: `{args.output}`).")
    update_section(args.results_md, args.section or f"anomaly-{args.prior_type}", title, body)
    print(table)


if __name__ == "__main__":
    main()
