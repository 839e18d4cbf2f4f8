"""Test NLL and perplexity of saved text models, by the importance-sampling estimator `scripts/text_table.py` uses
(`hf_latent_ebm.metrics.text.importance_sampled_nll`), on the same test sentences and with the same seeding, so a
model re-scored here after a change of the estimator can be compared with its text_table row.

    python research/text/text_nll.py runs/text_table/mle-ebm runs/text_table/vae-gaussian \\
        --output docs/results/text/test-nll/nll.json

The tokenizer is read from the first model folder that has one (text_table.py trains one tokenizer for all rows).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMForTextGeneration
from hf_latent_ebm.data import load_text_dataset
from hf_latent_ebm.metrics.text import (importance_sampled_nll, log_partition, num_predicted_tokens,
                                        perplexity)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="saved LatentEBMForTextGeneration folders")
    parser.add_argument("--data", default="kjv")
    parser.add_argument("--num-test", type=int, default=500, help="test sentences scored (text_table's default)")
    parser.add_argument("--is-samples", type=int, default=50, help="importance samples per test sentence")
    parser.add_argument("--seed", type=int, default=0, help="seed of the chains and samples (text_table's --seed)")
    parser.add_argument("--output", default="docs/results/text/test-nll/nll.json")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--section", default="text-nll")
    args = parser.parse_args()
    if args.num_test < 1 or args.is_samples < 1:
        raise ValueError("--num-test and --is-samples must be positive")

    tokenizer_dir = next((m for m in args.models if (Path(m) / "tokenizer.json").exists()), None)
    if tokenizer_dir is None:
        raise FileNotFoundError(f"none of {args.models} holds a tokenizer.json")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    test_texts = list(load_text_dataset(args.data)["test"]["text"])[: args.num_test]
    results = {}
    for path in args.models:
        model = LatentEBMForTextGeneration.from_pretrained(path).eval()
        if model.config.vocab_size != len(tokenizer):
            raise ValueError(f"{path} has vocabulary {model.config.vocab_size}, the tokenizer of {tokenizer_dir} "
                             f"{len(tokenizer)}: score models of one text_table run together")
        test_ids = tokenizer(test_texts, truncation=True, max_length=model.config.max_length, padding=True,
                             return_tensors="pt")["input_ids"]
        started = time.time()
        generator = torch.Generator().manual_seed(args.seed)  # the order text_table.py draws from it
        nll = importance_sampled_nll(model, test_ids, num_samples=args.is_samples,
                                     log_z=log_partition(model.prior, generator=generator), generator=generator)
        results[path] = {"nll": float(nll.mean()),
                         "ppl": perplexity(float(nll.sum()), num_predicted_tokens(test_ids, tokenizer.pad_token_id)),
                         "seconds": round(time.time() - started, 1)}
        print(json.dumps({path: results[path]}), flush=True)

    settings = {"data": args.data, "num_test": args.num_test, "is_samples": args.is_samples, "seed": args.seed}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({**settings, "models": results}, indent=2))
    table = ["| model | test NLL ↓ | test PPL ↓ |", "|---|---|---|"]
    table += [f"| `{path}` | {row['nll']:.2f} | {row['ppl']:.2f} |" for path, row in results.items()]
    body = ("\n".join(table) + f"\n\nImportance-sampled test NLL ({args.is_samples} samples per sentence, "
            f"{args.num_test} {args.data} test sentences, seed {args.seed}). Command: `python {' '.join(sys.argv)}` "
            f"(results: `{args.output}`).")
    update_section(args.results_md, args.section, "Text: test NLL of saved models", body)
    print(body)


if __name__ == "__main__":
    main()
