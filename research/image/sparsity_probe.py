"""Why the spike-and-slab rows of the prior/learner table (scripts/fid_table.py) generate poorly: compare how sparse
the prior's draws are with how sparse the posterior codes of test images are, for the models that table saved.

    python research/image/sparsity_probe.py runs/prior_learner_table/mnist-spike_slab runs/prior_learner_table/mnist-gaussian

Writes, per model: the prior's slab weight (spike-and-slab only), the share of coordinates with |z| < 0.1 among
2000 prior draws and among the posterior codes of 500 MNIST test images, and the quantiles of the codes' |z|.
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the Auto classes)
from hf_latent_ebm.data import load_image_dataset

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def probe(folder: str, images: torch.Tensor, threshold: float) -> dict:
    model = AutoModel.from_pretrained(folder).eval()
    prior_draws = model.sample_latents(2000, torch.Generator().manual_seed(0))
    codes = model.infer_latents(images, torch.Generator().manual_seed(0))
    row = {"model": folder, "latent_dim": model.config.latent_dim,
           "prior_near_zero_share": (prior_draws.abs() < threshold).float().mean().item(),
           "posterior_near_zero_share": (codes.abs() < threshold).float().mean().item(),
           "posterior_abs_quantiles": dict(zip(map(str, QUANTILES),
                                               torch.quantile(codes.abs().flatten(), torch.tensor(QUANTILES)).tolist()))}
    if hasattr(model.prior, "slab_weight"):
        row["slab_weight"] = float(model.prior.slab_weight)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--num-test-images", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--output", default="docs/results/image/fid-table/sparsity_probe.json")
    args = parser.parse_args()
    images = load_image_dataset("mnist", "test")["pixel_values"][: args.num_test_images]
    rows = [probe(folder, images, args.threshold) for folder in args.models]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"threshold": args.threshold, "num_test_images": args.num_test_images,
                                             "rows": rows}, indent=2))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
