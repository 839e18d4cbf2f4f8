"""What the short-run-inference objective (Nijkamp et al. 2020; `hf_latent_ebm.samplers.step_size`) says about a
trained model's posterior step size: the objective E_q[log p(x, z)] + H(q_s) (up to a constant, flow entropy) of
the posterior chain at several step sizes, on MNIST test images, each on the same start and noise.

    python research/image/step_size_probe.py runs/fid_hier/mnist-latent-EBM runs/hier
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the Auto classes)
from hf_latent_ebm.data import load_image_dataset
from hf_latent_ebm.samplers.step_size import tune_step_size



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--factors", type=float, nargs="+", default=[0.25, 0.5, 0.71, 1.0, 1.41, 2.0, 4.0],
                        help="the step sizes tried, as multiples of the configured one")
    parser.add_argument("--output", default="docs/results/image/fid-table/step_size_probe.json")
    args = parser.parse_args()
    images = load_image_dataset("mnist", "test")["pixel_values"][: args.num_images]
    rows = []
    for folder in args.models:
        model = AutoModel.from_pretrained(folder).eval()
        context = model.learner_context
        start = context.prior.posterior_start(len(images), torch.Generator().manual_seed(0))
        best, objectives = tune_step_size(context.posterior_sampler, context.posterior_potential(images), start,
                                          args.factors, torch.Generator().manual_seed(1),
                                          score_potential=context.posterior_potential(images, True))
        rows.append({"model": folder, "configured_step": context.posterior_sampler.step_sizes[0],
                     "steps": context.posterior_sampler.num_steps, "best_step": best,
                     "objective_by_step": {f"{step:g}": value for step, value in objectives.items()}})
        print(json.dumps(rows[-1]), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
