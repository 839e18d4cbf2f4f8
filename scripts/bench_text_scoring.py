"""Benchmark: the text posterior chain with the library's scoring (packed recurrence, vocabulary projection only at
scored positions) against the plain way (every padded position through the LSTM and the projection, then masked).

    OMP_NUM_THREADS=1 python scripts/bench_text_scoring.py          # KJV batches (apt-get install bible-kjv)

Both sides compute the same -log p(x | z) and grad_z (checked before timing); the script prints the per-chain time
of each and their ratio, and writes a JSON.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hf_latent_ebm import LatentEBMForTextGeneration, LatentEBMTextConfig
from hf_latent_ebm.data import load_text_dataset
from hf_latent_ebm.tokenization import train_tokenizer


def padded_negative_log_likelihood(decoder, input_ids, latents):
    """The plain computation: logits at every position, padding masked out afterwards."""
    logits = decoder(input_ids[:, :-1], latents)
    targets = input_ids[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (nll * (targets != decoder.pad_token_id)).sum(dim=1)


def chain_time(score, decoder, batches, latent_dim, num_steps, repeats):
    """Seconds per posterior chain: num_steps of (score, grad_z), the work of one Langevin chain."""
    def run(ids):
        z = torch.randn(ids.shape[0], latent_dim)
        for _ in range(num_steps):
            z.requires_grad_(True)
            (grad,) = torch.autograd.grad(score(decoder, ids, z).sum(), z)
            z = (z - 0.01 * grad).detach()

    run(batches[0])  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        for ids in batches:
            run(ids)
    return (time.perf_counter() - started) / (repeats * len(batches))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="kjv")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-batches", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="posterior Langevin steps per chain")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default="docs/results/text/benchmarks/bench_text_scoring.json")
    args = parser.parse_args()

    texts = list(load_text_dataset(args.data, seed=0)["train"]["text"])
    tokenizer = train_tokenizer(texts, kind="word", vocab_size=2000, max_length=40)
    generator = torch.Generator().manual_seed(0)
    batches = [tokenizer([texts[i] for i in torch.randint(0, len(texts), (args.batch_size,), generator=generator)],
                         truncation=True, max_length=40, padding=True, return_tensors="pt")["input_ids"]
               for _ in range(args.num_batches)]
    torch.manual_seed(0)
    config = LatentEBMTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    decoder = LatentEBMForTextGeneration(config).decoder.eval()  # eval: no dropout, so both sides are comparable

    z = torch.randn(args.batch_size, config.latent_dim, requires_grad=True)
    library, plain = decoder.negative_log_likelihood(batches[0], z), padded_negative_log_likelihood(decoder, batches[0], z)
    library_grad, plain_grad = (torch.autograd.grad(value.sum(), z)[0] for value in (library, plain))
    if not (torch.allclose(library, plain, atol=1e-3) and torch.allclose(library_grad, plain_grad, atol=1e-4)):
        raise RuntimeError("the two scorings disagree; the timing would compare different computations")

    library_s = chain_time(type(decoder).negative_log_likelihood, decoder, batches, config.latent_dim, args.steps,
                           args.repeats)
    plain_s = chain_time(padded_negative_log_likelihood, decoder, batches, config.latent_dim, args.steps, args.repeats)
    padding = float(sum((ids[:, 1:] == tokenizer.pad_token_id).float().mean() for ids in batches) / len(batches))
    result = {"device": "CPU", "threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "batch_size": args.batch_size,
              "posterior_steps": args.steps, "padding_fraction": round(padding, 3),
              "plain_chain_s": round(plain_s, 4), "library_chain_s": round(library_s, 4),
              "speedup": round(plain_s / library_s, 2)}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
