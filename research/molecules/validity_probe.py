"""Where do a molecule model's invalid samples come from? Validity of molecules decoded (temperature 1) from latents
of three sources: the prior chain (what generation uses), the posterior of training molecules (what the decoder
learned on), and the reference N(0, I); and at temperature 0.7 from the prior. If posterior latents decode valid
molecules and prior ones do not, the prior misses the aggregate posterior; if both fail, the decoder itself is the
limit (its budget).

    python research/molecules/validity_probe.py runs/molecule_table/ebm-seed0 runs/molecule_table/gaussian-seed0 \
        > docs/results/molecules/validity-probe/seed0.jsonl
"""

import json
import sys

import torch
from transformers import AutoModel

import hf_latent_ebm  # noqa: F401  (registers the model kinds)
from hf_latent_ebm.metrics.molecules import validity


def probe(folder: str, count: int = 500) -> dict:
    model = AutoModel.from_pretrained(folder).eval()
    training = open(json.load(open(f"{folder}/train_results.json"))["dataset"]).read().split()[:count]
    generator = torch.Generator().manual_seed(0)
    posterior = model.posterior_latents(model.tokenize_molecules(training), generator)
    prior = model.sample_latents(count, generator)
    reference = torch.randn(count, model.config.latent_dim, generator=generator)
    return {"folder": folder,
            "prior": validity(model.decode_molecules(prior, generator)),
            "prior_t0.7": validity(model.decode_molecules(prior, generator, temperature=0.7)),
            "posterior_of_training": validity(model.decode_molecules(posterior, generator)),
            "reference_normal": validity(model.decode_molecules(reference, generator)),
            "latent_norms": {name: latents.norm(dim=1).mean().item()
                             for name, latents in (("prior", prior), ("posterior", posterior))}}


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        print(json.dumps(probe(folder)), flush=True)
