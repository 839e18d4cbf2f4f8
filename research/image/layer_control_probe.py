"""Why a hierarchical model's layers control what they control: for each trained model (a folder), separate what
the prior's links do from what the generator does with each layer.

    python research/image/layer_control_probe.py runs/hier runs/fid_hier/mnist-hierarchical-MLE \
        --output docs/results/image/fid-table/layer_control_probe.json

Per model and layer k (1 = next to x), on 500 prior samples and a CNN digit classifier trained on MNIST:
- conditional: the share whose class changes when layer k is redrawn given the others (`model.resample_layer`,
  what the Space and the sample grids show);
- swapped: the share whose class changes when layer k is replaced by another sample's layer k (no conditioning:
  how much the generator relies on that layer alone);
- per link p(z_k | z_{k+1}): the share of z_k's variance over the prior samples that the link's mean explains,
  1 - mean(s_k^2) / var(z_k) (0: z_k is independent of the layer above, so redrawing z_k given z_{k+1} is close to
  redrawing it unconditionally).
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the Auto classes)
from hf_latent_ebm.data import load_image_dataset
from hf_latent_ebm.evaluation import image_class_predictor, layer_identity_changes


@torch.no_grad()
def probe(folder: str, classify, num_samples: int = 500) -> dict:
    model = AutoModel.from_pretrained(folder).eval()
    prior = model.prior
    latents = model.sample_latents(num_samples, torch.Generator().manual_seed(0))
    before = classify(model.decode(latents))
    layers = prior.split(latents)
    swapped, explained = {}, {}
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(1))
    for index in range(prior.num_layers):
        mixed = [layer[order] if position == index else layer for position, layer in enumerate(layers)]
        swapped[index + 1] = float((classify(model.decode(torch.cat(mixed, dim=1))) != before).float().mean())
        if index < prior.num_layers - 1 and prior.links:  # ICCV's prior (links=False) has none
            _, std = prior.link(index, layers[index + 1])
            explained[f"{index + 1}|{index + 2}"] = float(1 - std.pow(2).mean(dim=0).div(
                layers[index].var(dim=0)).mean())
    return {"model": folder, "layer_sizes": prior.layer_sizes, "energy": prior.energy_kind,
            "learner": model.config.learner,
            "conditional_identity_change": layer_identity_changes(model, classify, num_samples),
            "swapped_identity_change": swapped, "link_explained_variance": explained}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--output", default="docs/results/image/fid-table/layer_control_probe.json")
    args = parser.parse_args()
    classify = image_class_predictor(load_image_dataset("mnist", "train"), seed=0)
    rows = [probe(folder, classify) for folder in args.models]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=2))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
