"""Why the variational hierarchical model with Gaussian links diverged (issue 34's first anomaly run, MNIST without
digit 1, seed 0: one of 64 prior chains overflowed at update 887, deterministically). Reproduce the run with
checkpoints, then look at the checkpoint before the divergence:

    python research/image/link_divergence_probe.py --train runs/repro_hier_digit1   # ~8 min on the CPU, then fails
    python research/image/link_divergence_probe.py runs/repro_hier_digit1/checkpoints/step-00000850

Prints how far 5000 training-length prior chains (60 steps of 0.4) travel, and the links' stds p(z_i | z_{i+1}) over
typical chain ends and at the farthest one.
"""

import argparse

import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the Auto classes)
from hf_latent_ebm import LatentEBMForImageGeneration
from hf_latent_ebm.samplers import LangevinSampler


def train(output_dir: str) -> None:
    from hf_latent_ebm.evaluation import image_config, load_mnist_70k, split_for_digit
    from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

    pixel_values, labels = load_mnist_70k("mnist")
    train_images, _, _ = split_for_digit(pixel_values, labels, 1, 0)
    torch.manual_seed(0)
    # The first run's model: ICCV's joint energy and ladder encoder, but with the links of CVPR's prior.
    model = LatentEBMForImageGeneration(image_config({"preset": "hierarchical", "variational": True,
                                                      "prior_config": {"links": True}}))
    LatentEBMTrainer(model, train_images, TrainingArguments(output_dir=output_dir, max_steps=1000, batch_size=64,
                                                            seed=0, sample_every=0, checkpoint_every=50)).train()


@torch.no_grad()
def probe(folder: str) -> None:
    prior = AutoModel.from_pretrained(folder).eval().prior
    chain = LangevinSampler(60, 0.4, on_nonfinite="reset")
    ends = chain(prior.potential, prior.sample_reference(5000, torch.Generator().manual_seed(0)),
                 torch.Generator().manual_seed(1))
    norms = ends.norm(dim=1)
    print("|z| at the chains' ends, median / 99% / max:", torch.quantile(norms, torch.tensor([.5, .99, 1.])).tolist())
    typical = prior.split(ends[norms < norms.median()])
    farthest = prior.split(ends[norms.argmax()][None])
    print("farthest chain's layer norms (bottom to top):", [round(layer.norm().item(), 2) for layer in farthest])
    for index in range(prior.num_layers - 1):
        std = prior.link(index, typical[index + 1])[1]
        far_std = prior.link(index, farthest[index + 1])[1]
        print(f"link p(z_{index + 1} | z_{index + 2}) std: typical median {std.median():.2f}, max {std.max():.2f}; "
              f"at the farthest chain max {far_std.max():.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?")
    parser.add_argument("--train", metavar="OUTPUT_DIR")
    args = parser.parse_args()
    if args.train:
        train(args.train)
    if args.model:
        probe(args.model)


if __name__ == "__main__":
    main()
