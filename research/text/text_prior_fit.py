"""Can the EBM prior, sampled by its short-run prior chain, learn a text model's aggregate posterior? The decoder is
held fixed: posterior latents of training sentences are computed once, and a fresh energy (the model's architecture)
is fitted to them by the prior half of the MLE learner (E(z+) - E(z-), z- from the prior chain), for each given
sampler setting. Reports, every --report-every steps, the energy gap E(z+) - E(z-) on the batch and the MMD
(Gaussian kernel, bandwidth sqrt(d)) between chain samples and held-out posterior latents (1000 each by default).

    python research/text/text_prior_fit.py runs/text_sweep_cpu/ebm-ref_seed0/mle-ebm --settings \
        '{"step_size": 0.4}' '{"step_size": 0.2}' --steps 2000

A step size s cannot produce a marginal standard deviation below about s (a Gaussian potential's Langevin chain
keeps variance v / (1 - s^2 / 4v), at least s^2 for any v), so a posterior narrower than that cannot be matched and
the energy sharpens without end; this script shows whether that happens for a given posterior.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMForTextGeneration
from hf_latent_ebm.data import load_text_dataset
from hf_latent_ebm.samplers.langevin import LangevinSampler
from hf_latent_ebm.priors import EnergyPrior


def mmd(a: torch.Tensor, b: torch.Tensor) -> float:
    def kernel(x, y):
        return torch.exp(-torch.cdist(x, y).pow(2) / (2 * x.shape[1])).mean()
    return float(kernel(a, a) + kernel(b, b) - 2 * kernel(a, b))


@torch.no_grad()
def posterior_of_training_sentences(model_dir: str, data: str, num_sentences: int, seed: int) -> torch.Tensor:
    model = LatentEBMForTextGeneration.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = list(load_text_dataset(data)["train"]["text"])[:num_sentences]
    ids = tokenizer(texts, truncation=True, max_length=model.config.max_length, padding=True,
                    return_tensors="pt")["input_ids"]
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([model.posterior_latents(ids[i:i + 500], generator) for i in range(0, len(ids), 500)]), model


def fit(latents: torch.Tensor, held_out: torch.Tensor, config, setting: dict, steps: int, report_every: int,
        seed: int) -> list[dict]:
    torch.manual_seed(seed)
    prior_config, sampler_config = config.part_config("prior"), config.part_config("sampler")
    prior = EnergyPrior(latents.shape[1], prior_config.hidden_dim, prior_config.num_hidden_layers,
                        prior_config.activation, prior_config.sigma)
    learning_rate = setting.get("learning_rate", config.part_config("learner").prior_learning_rate)
    optimizer = torch.optim.Adam(prior.parameters(), lr=learning_rate,
                                 betas=(config.adam_beta1, config.adam_beta2))
    sampler = LangevinSampler(setting.get("num_steps", sampler_config.prior_steps),
                              setting.get("step_size", sampler_config.prior_step_size))
    generator = torch.Generator().manual_seed(seed)
    batch_size, history = setting.get("batch_size", 64), []
    for step in range(1, steps + 1):
        positive = latents[torch.randint(0, len(latents), (batch_size,), generator=generator)]
        negative = prior.sample_from(prior.sample_reference(batch_size, generator, "cpu"), sampler, generator)
        gap = prior.energy(positive).mean() - prior.energy(negative).mean()
        optimizer.zero_grad()
        gap.backward()
        optimizer.step()
        if step % report_every == 0:
            samples = prior.sample_from(prior.sample_reference(len(held_out), generator, "cpu"), sampler,
                                      generator)
            history.append({"step": step, "energy_gap": round(float(gap), 3), "mmd": round(mmd(samples, held_out), 5),
                            "sample_norm": round(float(samples.norm(dim=1).mean()), 3),
                            "sample_std": round(float(samples.std(dim=0).mean()), 4)})
    return history


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--settings", nargs="+", default=['{"step_size": 0.4}', '{"step_size": 0.2}'],
                        help="JSON per run: step_size, num_steps, learning_rate, batch_size (model config otherwise)")
    parser.add_argument("--data", default="kjv")
    parser.add_argument("--num-sentences", type=int, default=4000, help="training sentences whose posterior is used")
    parser.add_argument("--num-held-out", type=int, default=1000, help="of those, held out to score the samples")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--report-every", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="docs/results/text/prior-fit/prior_fit.json")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--section", default="text-prior-fit")
    args = parser.parse_args()

    latents, model = posterior_of_training_sentences(args.model_dir, args.data, args.num_sentences, args.seed)
    if not 0 < args.num_held_out < len(latents):
        raise ValueError(f"--num-held-out must be between 1 and {len(latents) - 1}, got {args.num_held_out}")
    fitted, held_out = latents[:-args.num_held_out], latents[-args.num_held_out:]
    sigma = model.config.part_config("prior").sigma
    reference = torch.randn(held_out.shape, generator=torch.Generator().manual_seed(args.seed)) * sigma
    summary = {"posterior_norm": round(float(held_out.norm(dim=1).mean()), 3),
               "posterior_std": round(float(held_out.std(dim=0).mean()), 4),
               "posterior_std_min": round(float(held_out.std(dim=0).min()), 4),
               "p0_mmd": round(mmd(reference, held_out), 5)}
    runs = []
    for text in args.settings:
        setting = json.loads(text)
        history = fit(fitted, held_out, model.config, setting, args.steps, args.report_every, args.seed)
        runs.append({"setting": setting, "history": history})
        print(json.dumps(runs[-1]), flush=True)
    result = {"model_dir": args.model_dir, "steps": args.steps, "posterior": summary, "runs": runs}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))

    table = ["| setting | " + " | ".join(f"step {h['step']}" for h in runs[0]["history"]) + " |",
             "|---" * (len(runs[0]["history"]) + 1) + "|"]
    for run in runs:
        table.append(f"| `{json.dumps(run['setting'])}` | " + " | ".join(
            f"MMD {h['mmd']:.4f}, gap {h['energy_gap']:.3g}, norm {h['sample_norm']:.2f}" for h in run["history"]) + " |")
    body = ("\n".join(table) + f"\n\nHeld-out aggregate posterior of `{args.model_dir}`: mean norm "
            f"{summary['posterior_norm']}, per-dimension std {summary['posterior_std']} (smallest "
            f"{summary['posterior_std_min']}); MMD of p0 draws to it {summary['p0_mmd']}. Each cell: MMD of "
            f"{len(held_out)} chain samples to as many held-out posterior latents, the batch energy gap E(z+) - E(z-) "
            "(near 0 when the chain keeps up with the energy), and the samples' mean norm.\n\n"
            f"Command: `python {' '.join(sys.argv)}` (results: `{args.output}`).")
    update_section(args.results_md, args.section, "Text: can the prior chain learn the aggregate posterior?", body)
    print(body)


if __name__ == "__main__":
    main()
