"""Does the hierarchical (ICCV 2023) model lose the anomaly table to the single-layer latent EBM because of its
inference? Score one saved model of scripts/anomaly_mnist.py three ways on the same test split: -log p(x, z) at
z ~ q(z | x) (the table's score, ICCV's protocol), at q's mean, and at the end of a 20-step posterior Langevin chain
started from q's draw (the single-layer model's kind of inference, on the same model); and at q's draw the prior's
term -log p(z) and the generator's term -log p(x | z) alone, to see which one carries the signal.

    python research/image/anomaly_inference_probe.py runs/anomaly_hier/mnist-hierarchical-class4-seed0 --digit 4
"""

import argparse
import json

import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the Auto classes)
from hf_latent_ebm.evaluation import load_mnist_70k, split_for_digit
from hf_latent_ebm.metrics.anomaly import auprc


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--digit", type=int, required=True)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    model = AutoModel.from_pretrained(args.model).eval()
    pixel_values, labels = load_mnist_70k(args.dataset)
    _, test_images, test_labels = split_for_digit(pixel_values, labels, args.digit, args.seed)
    chain = model.posterior_sampler(num_steps=args.steps, langevin_proper=True)
    scores = {"q_draw": [], "q_mean": [], "q_then_langevin": [], "q_draw_prior_term_only": [],
              "q_draw_reconstruction_only": []}
    generator = torch.Generator().manual_seed(args.seed)
    for start in range(0, len(test_images), 500):
        images = test_images[start:start + 500]
        with torch.no_grad():
            mean = model.encoder(images)[0]  # (mean, log-variance)
        draw = model.encoder.sample(images, generator).detach()
        refined = chain(model.learner_context.posterior_potential(images, True), draw, generator)
        with torch.no_grad():
            scores["q_draw"].append(model.joint_potential(images, draw))
            scores["q_then_langevin"].append(model.joint_potential(images, refined))
            prior_term = model.prior.potential(draw)
            scores["q_draw_prior_term_only"].append(prior_term)
            scores["q_draw_reconstruction_only"].append(model.joint_potential(images, draw) - prior_term)
            scores["q_mean"].append(model.joint_potential(images, mean))
    result = {name: auprc(torch.cat(values), test_labels == args.digit) for name, values in scores.items()}
    print(json.dumps({"model": args.model, "digit": args.digit, **result}))


if __name__ == "__main__":
    main()
