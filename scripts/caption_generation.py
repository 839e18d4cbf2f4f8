"""Cross-modal generation of an MNIST-captions model (caption <-> image), scored the way a person looks at it:
are the images drawn for one caption as varied as real images of its class, do they show that class, and how far
are they from the test images (FID); with z from q's draw and from Langevin on the model's posterior given the
caption, at several likelihood weights, on one trained model. Also the two measurements behind the choice
(docs/multimodal.md): how narrow q(z | caption) is against the spread of the image expert's means within a class,
and by how many nats the caption decoder prefers the right class's caption over the best wrong one.

    python scripts/caption_generation.py --model spaces/multimodal-generation/models/mnist-captions
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hf_latent_ebm import LatentEBMForMultimodalGeneration
from hf_latent_ebm.data.multimodal import CAPTION_LABEL_NAMES, build_mnist_captions, caption_for
from hf_latent_ebm.metrics.coherence import (ModalityClassifiers, cross_coherence, cross_modal_diversity,
                                             mean_pairwise_distance)
from hf_latent_ebm.metrics.fid import FeatureStatistics, frechet_distance, inception_features
from hf_latent_ebm.utils import update_results_section

# (name, cross_modal_sampling, the caption's likelihood weight): q's draw is how the model generated before issue 31.
SETTINGS = [("q's draw", "encoder", 1.0), ("posterior, w=1", "posterior", 1.0), ("posterior, w=3", "posterior", 3.0),
            ("posterior, w=10", "posterior", 10.0), ("posterior, w=30", "posterior", 30.0),
            ("posterior, w=100", "posterior", 100.0)]


def arrays(dataset) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    images = np.stack([np.asarray(image) for image in dataset["image"]]).astype(np.uint8)
    return torch.from_numpy(images), list(dataset["caption"]), torch.tensor(dataset["label"])


def classifiers_for(args, train) -> ModalityClassifiers:
    folder = Path(args.work_dir) / "classifiers"
    if (folder / "classifiers.json").exists():
        return ModalityClassifiers.load(folder)
    images, captions, labels = arrays(train)
    classifiers = ModalityClassifiers.train({"image": ("image", images, labels), "caption": ("text", captions, labels)},
                                            num_labels=len(CAPTION_LABEL_NAMES), seed=0)
    classifiers.save(folder)
    return classifiers


@torch.no_grad()
def diagnostics(model, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> dict:
    """q(z | caption)'s std against the within-class spread of the image expert's means; the caption decoder's
    margin (nats) between the right class's caption and the best wrong one, at the image expert's draws; how varied
    the decoded image expert's draws of real images of a class are, against those images."""
    captions = model.prepare_inputs({"caption": [caption_for(label, 0) for label in range(len(CAPTION_LABEL_NAMES))]})
    _, caption_log_variance = model.encoder(captions)
    batch = model.prepare_inputs({"image": images})
    image_means, _ = model.encoder(batch)
    spreads = [image_means[labels == label].std(dim=0).mean() for label in labels.unique() if (labels == label).sum() > 2]
    latents = model.encoder.sample(batch, generator)
    decoder = model.decoder.decoders["caption"]
    nll = torch.stack([decoder.negative_log_likelihood(
        model.prepare_inputs({"caption": [caption_for(label, 0)] * len(latents)})["caption"], latents)
        for label in range(len(CAPTION_LABEL_NAMES))], dim=1)
    # Can the image decoder render a class's variety? Decode the image expert's draws of ten real images per class.
    reconstructed = model.to_raw("image", model.decoder.decoders["image"].decode(latents))
    chosen = [torch.nonzero(labels == label).flatten()[:10] for label in labels.unique()]
    chosen = [indices for indices in chosen if len(indices) == 10]
    reconstruction_ratio = (sum(mean_pairwise_distance(reconstructed[indices]) for indices in chosen)
                            / sum(mean_pairwise_distance(images[indices]) for indices in chosen))
    rows = torch.arange(len(labels))
    wrong = nll.clone()
    wrong[rows, labels] = float("inf")
    margin = wrong.min(dim=1).values - nll[rows, labels]
    return {"q_caption_std": float((0.5 * caption_log_variance).exp().mean()),
            "image_mean_spread_within_class": float(torch.stack(spreads).mean()),
            "caption_margin_nats_quartiles": [round(float(q), 2) for q in torch.quantile(margin, torch.tensor([.25, .5, .75]))],
            "caption_decoder_picks_right_class": float((nll.argmin(dim=1) == labels).double().mean()),
            "image_expert_reconstruction_diversity": reconstruction_ratio}


def fid_against(real_statistics, images: torch.Tensor) -> float:
    fake = FeatureStatistics()
    fake.update(inception_features(images))
    return frechet_distance(*real_statistics, *fake.mean_and_covariance())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="spaces/multimodal-generation/models/mnist-captions")
    parser.add_argument("--num-train", type=int, default=20000, help="training examples for the classifiers")
    parser.add_argument("--num-test", type=int, default=500, help="test examples for coherence and FID")
    parser.add_argument("--num-draws", type=int, default=10, help="draws per caption for diversity")
    parser.add_argument("--work-dir", default="runs/caption_generation")
    parser.add_argument("--results", default="docs/results/multimodal/captions/caption_generation.json")
    parser.add_argument("--tag", default="captions")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "scripts/caption_generation.py", *(sys.argv[1:] if argv is None else argv)])
    model = LatentEBMForMultimodalGeneration.from_pretrained(args.model).eval()
    train = build_mnist_captions("train", num_examples=args.num_train)
    test = build_mnist_captions("test")
    classifiers = classifiers_for(args, train)
    images, captions, labels = arrays(test)
    accuracy = {"image": classifiers.accuracy("image", images, labels),
                "caption": classifiers.accuracy("caption", captions, labels)}
    generator = torch.Generator().manual_seed(0)
    diagnosed = diagnostics(model, images[:1000], labels[:1000], generator)
    print(json.dumps(diagnosed), flush=True)
    scored = images[:args.num_test], captions[:args.num_test], labels[:args.num_test]
    real = FeatureStatistics()
    real.update(inception_features(images[args.num_test:2 * args.num_test]))
    real_statistics = real.mean_and_covariance()
    firsts = [int(np.flatnonzero(labels.numpy() == label)[0]) for label in range(len(CAPTION_LABEL_NAMES))]
    rows = []
    for name, mode, weight in SETTINGS:
        model.config.cross_modal_sampling = mode
        model.config.modalities["caption"]["conditioning_weight"] = weight
        started = time.time()
        generator = torch.Generator().manual_seed(1)
        diversity = cross_modal_diversity(model, {"caption": [captions[i] for i in firsts]}, labels[firsts],
                                          {"image": (images, labels)}, num_draws=args.num_draws, generator=generator)
        coherence = cross_coherence(model, classifiers, {"image": scored[0], "caption": scored[1]}, scored[2],
                                    subsets="single", generator=generator)["by_subset"]
        drawn = model.generate(conditioned_on={"caption": scored[1]}, targets=["image"], generator=generator)["image"]
        rows.append({"setting": name, "cross_modal_sampling": mode, "likelihood_weight": weight,
                     "diversity_caption_to_image": diversity["ratio"],
                     "caption_to_image": coherence["caption->image"], "image_to_caption": coherence["image->caption"],
                     "fid_caption_to_image": fid_against(real_statistics, drawn),
                     "seconds": round(time.time() - started, 1)})
        print(json.dumps(rows[-1]), flush=True)
    steps = model.config.cross_modal_langevin_steps
    record = {"command": command, "model": args.model, "classifier_accuracy": accuracy, "diagnostics": diagnosed,
              "langevin_steps": steps, "langevin_step_size": model.config.cross_modal_langevin_step_size, "rows": rows}
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    lines = ["| z given the caption | diversity, caption -> image | coherence, caption -> image | coherence, image -> "
             "caption | FID, caption -> image |", "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['diversity_caption_to_image']:.3f} | {r['caption_to_image']:.3f} | "
              f"{r['image_to_caption']:.3f} | {r['fid_caption_to_image']:.1f} |" for r in rows]
    body = ("\n".join(lines) + f"\n\nModel `{args.model}`; posterior chains of {steps} steps of size "
            f"{model.config.cross_modal_langevin_step_size} from q's draws, w the weight of the caption's likelihood "
            f"(the caption spec's `conditioning_weight`; the image's stays 1). Diversity: {args.num_draws} images drawn for the first test caption "
            f"of each of the 20 classes, their mean pairwise pixel distance over that of as many real test images of "
            f"the class. Coherence on the first {args.num_test} test examples (classifiers trained here: image "
            f"{accuracy['image']:.3f}, caption {accuracy['caption']:.3f} test accuracy); FID of the images drawn for "
            f"those captions against the next {args.num_test} test images (small samples: compare rows). "
            f"Diagnostics: q(z | caption) std {diagnosed['q_caption_std']:.2f} against a within-class spread of the "
            f"image expert's means of {diagnosed['image_mean_spread_within_class']:.2f}; the caption decoder prefers "
            f"the right class's caption by {diagnosed['caption_margin_nats_quartiles'][1]:.1f} nats (median; "
            f"quartiles {diagnosed['caption_margin_nats_quartiles'][0]:.1f} / "
            f"{diagnosed['caption_margin_nats_quartiles'][2]:.1f}) and picks it for "
            f"{diagnosed['caption_decoder_picks_right_class']:.1%} of image latents; the image expert's draws of ten "
            f"test images per class decode to images {diagnosed['image_expert_reconstruction_diversity']:.2f} as "
            f"varied as those images.\n\n```bash\n{command}\n```\n")
    update_results_section("docs/results.md", f"caption_generation_{args.tag}",
                           f"Multimodal generation: MNIST-captions, caption -> image ({args.tag})", body)
    print(body)


if __name__ == "__main__":
    main()
