"""Text modelling: the latent-EBM prior model against a Gaussian-prior VAE and an LSTM language model, at equal
budget on one corpus (Pang et al. 2020, Table 2; Pang et al. 2021).

For each model: test NLL and perplexity (importance sampling over a Gaussian fitted to the posterior, S samples;
exact for the LM), forward perplexity (generated sentences scored by an LSTM LM trained on the real training
text), reverse perplexity (an LSTM LM trained on generated sentences, scored on the real test text), active units
(Cov_x E[z|x] > 0.01 on the test text) and reconstruction BLEU (greedy decoding from the posterior mean).
Writes a results JSON and the table into docs/results.md.

    python scripts/text_table.py                                      # KJV (apt-get install bible-kjv), CPU budget
    python scripts/text_table.py --data my.txt --max-steps 5000 --device cuda
    python scripts/text_table.py --seed 1 --section text-table-seed1 --output docs/results/text/table-1000-steps/text_table_seed1.json
    python scripts/text_table.py --max-steps 2000 --resume    # continue the latent models of an earlier run

With --resume the latent models continue from the latest checkpoint in their --work-dir folder; the trainer restores
weights, optimiser, schedule, chain generator and data position, so this equals an uninterrupted run of --max-steps.
Their training time is the total over both runs (kept in TIMING_FILE beside the checkpoints). The LSTM LM baseline
has no checkpoints and is trained from scratch.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import datasets
import torch

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMForTextGeneration, LatentEBMTextConfig
from hf_latent_ebm.data import load_text_dataset
from hf_latent_ebm.metrics.text import (active_units, corpus_bleu, importance_sampled_nll,
                                        language_model_perplexity, log_partition, num_predicted_tokens, perplexity,
                                        train_language_model)
from hf_latent_ebm.tokenization import train_tokenizer
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments

TIMING_FILE = "training_time.json"  # {"steps": ..., "seconds": ...}: training time summed over resumed runs
MODELS = {"ebm": ("latent EBM prior", {"learner": "mle", "prior_type": "ebm"}),
          "vae": ("Gaussian-prior VAE", {"learner": "vae", "prior_type": "gaussian"}),
          "vae_ebm": ("VAE with latent EBM prior", {"learner": "vae_ebm", "prior_type": "ebm"})}


def tokens_of(tokenizer, ids: torch.Tensor) -> list[list[str]]:
    return [text.split() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="kjv")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--num-test", type=int, default=500, help="test sentences scored")
    parser.add_argument("--num-generated", type=int, default=2000, help="sentences generated per model")
    parser.add_argument("--lm-steps", type=int, default=1500, help="steps of the LMs behind forward/reverse PPL")
    parser.add_argument("--is-samples", type=int, default=50, help="importance samples per test sentence")
    parser.add_argument("--seed", type=int, default=0, help="seed of training, sampling and the metric LMs")
    parser.add_argument("--config-overrides", default="{}", help="JSON of LatentEBMTextConfig fields")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", default="runs/text_table")
    parser.add_argument("--output", default="docs/results/text/table/text_table.json")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--section", default="text-table", help="section of --results-md to (re)write")
    parser.add_argument("--resume", action="store_true", help="continue the latent models from --work-dir")
    parser.add_argument("--models", nargs="+", choices=["lm", *MODELS], default=["lm", *MODELS],
                        help="rows to train and score (the oracle LM behind forward PPL is always trained)")
    args = parser.parse_args()

    overrides = json.loads(args.config_overrides)
    splits = load_text_dataset(args.data)  # the fixed split: --seed varies the models' randomness only
    train_texts, test_texts = list(splits["train"]["text"]), list(splits["test"]["text"])[: args.num_test]
    max_length = overrides.get("max_length", LatentEBMTextConfig().max_length)
    tokenizer = train_tokenizer(train_texts, kind="word", vocab_size=args.vocab_size, max_length=max_length)
    special = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id)
    lm_kwargs = dict(vocab_size=len(tokenizer), **special, batch_size=args.batch_size, seed=args.seed,
                     device=args.device)

    def tokenize(texts):
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")["input_ids"]

    train_ids, test_ids = tokenize(train_texts), tokenize(test_texts)
    train_data = datasets.Dataset.from_dict({"input_ids": train_ids.numpy()})
    test_tokens = num_predicted_tokens(test_ids, tokenizer.pad_token_id)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"

    started = time.time()
    oracle = train_language_model(train_ids, num_steps=args.lm_steps, progress=True, **lm_kwargs)
    rows = [{"model": "real test data", "forward_ppl": language_model_perplexity(oracle, test_ids),
             "train_time_s": None}]
    print(f"oracle LM: {time.time() - started:.0f}s, real-data forward PPL {rows[0]['forward_ppl']:.2f}", flush=True)

    def forward_and_reverse(generated_ids):
        reverse_lm = train_language_model(generated_ids, num_steps=args.lm_steps, **lm_kwargs)
        return (language_model_perplexity(oracle, generated_ids), language_model_perplexity(reverse_lm, test_ids))

    if "lm" in args.models:  # the LSTM language model baseline, same steps and batch size as the latent models
        started = time.time()
        language_model = train_language_model(train_ids, num_steps=args.max_steps, progress=True, **lm_kwargs)
        train_time = time.time() - started
        generator = torch.Generator(device=args.device).manual_seed(args.seed)
        lm_samples = language_model.decoder.generate(torch.zeros(args.num_generated, 1, device=args.device),
                                                     max_length, generator=generator).cpu()
        forward_ppl, reverse_ppl = forward_and_reverse(lm_samples)
        test_ppl = language_model_perplexity(language_model, test_ids)
        rows.append({"model": "LSTM language model", "nll": test_tokens * torch.log(torch.tensor(test_ppl)).item()
                     / len(test_texts), "ppl": test_ppl, "forward_ppl": forward_ppl, "reverse_ppl": reverse_ppl,
                     "active_units": None, "bleu": None, "train_time_s": round(train_time, 1),
                     "samples": tokenizer.batch_decode(lm_samples[:5], skip_special_tokens=True)})
        print(json.dumps(rows[-1]), flush=True)

    for name, settings in (MODELS[key] for key in args.models if key in MODELS):
        torch.manual_seed(args.seed)
        config = LatentEBMTextConfig(vocab_size=len(tokenizer), **special, **{**overrides, **settings})
        model = LatentEBMForTextGeneration(config).to(args.device)
        model.set_tokenizer(tokenizer)
        output_dir = Path(args.work_dir) / f"{settings['learner']}-{settings['prior_type']}"
        earlier_time = json.loads((output_dir / TIMING_FILE).read_text())["seconds"] if args.resume else 0.0
        training_args = TrainingArguments(output_dir=str(output_dir), max_steps=args.max_steps,
                                          batch_size=args.batch_size, seed=args.seed, sample_every=0,
                                          checkpoint_every=0, num_grid_samples=16)
        started = time.time()
        LatentEBMTrainer(model, train_data, training_args).train(resume=args.resume)
        train_time = earlier_time + time.time() - started
        (output_dir / TIMING_FILE).write_text(json.dumps({"steps": args.max_steps, "seconds": round(train_time, 1)}))
        model.eval()
        generator = torch.Generator(device=model.device).manual_seed(args.seed)
        device_test_ids = test_ids.to(model.device)
        nll = importance_sampled_nll(model, device_test_ids, num_samples=args.is_samples,
                                     log_z=log_partition(model.prior, generator=generator), generator=generator)
        num_chains = 8
        means, stds = model.posterior_gaussian(device_test_ids, num_chains=num_chains, generator=generator)
        # Chain averages carry Monte Carlo noise Var(z|x)/K; an inference network's means are exact.
        noise = None if model.learner.infers_with_encoder else stds.pow(2).mean(dim=0).cpu() / num_chains
        # The papers' protocol: the test set holds <unk>, so samples and reconstructions may too.
        reconstructions = model.decoder.generate(means, max_length, greedy=True, suppress_unk=False)
        samples = model.generate_ids(args.num_generated, generator, suppress_unk=False).cpu()  # ids, not text
        forward_ppl, reverse_ppl = forward_and_reverse(samples)
        rows.append({"model": name, "nll": float(nll.mean()), "ppl": perplexity(float(nll.sum()), test_tokens),
                     "forward_ppl": forward_ppl, "reverse_ppl": reverse_ppl, "active_units": active_units(means.cpu(), estimator_variance=noise),
                     "bleu": corpus_bleu(tokens_of(tokenizer, test_ids), tokens_of(tokenizer, reconstructions.cpu())),
                     "train_time_s": round(train_time, 1),
                     "samples": tokenizer.batch_decode(samples[:5], skip_special_tokens=True)})
        print(json.dumps(rows[-1]), flush=True)

    result = {"data": args.data, "device": device_name, "max_steps": args.max_steps, "batch_size": args.batch_size,
              "vocab_size": len(tokenizer), "num_train": len(train_texts), "num_test": len(test_texts),
              "is_samples": args.is_samples, "lm_steps": args.lm_steps, "config_overrides": overrides, "resumed": args.resume,
              "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))

    def cell(value, digits=2):
        return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))

    table = ["| model | test NLL ↓ | test PPL ↓ | forward PPL ↓ | reverse PPL ↓ | active units | recon. BLEU | "
             "training |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        time_cell = "–" if row["train_time_s"] is None else f"{row['train_time_s'] / 60:.1f} min"
        table.append(f"| {row['model']} | {cell(row.get('nll'))} | {cell(row.get('ppl'))} | {cell(row['forward_ppl'])}"
                     f" | {cell(row.get('reverse_ppl'))} | {cell(row.get('active_units'))} | "
                     f"{cell(row.get('bleu'), 3)} | {time_cell} |")
    body = ("\n".join(table) + f"\n\nCorpus {args.data}: {len(train_texts)} training and {len(test_texts)} test "
            f"sentences, word-level tokenizer (not the CLI's byte-level BPE default), vocabulary {len(tokenizer)}, "
            f"max length {max_length} tokens; generation may emit <unk>, as the test set holds it. Each model: "
            f"{args.max_steps}"
            f" steps of batch {args.batch_size} on {device_name}. NLL per sentence in nats; the latent models' by "
            f"importance sampling ({args.is_samples} samples from a Gaussian fitted to 8 posterior chains, or the "
            f"VAE's q), the EBM's log Z by 100k Monte Carlo draws from p0. Active units: Cov_x E[z|x] > 0.01, "
            f"with the chain average's own noise subtracted for the Langevin models. Forward/reverse PPL use LSTM LMs trained "
            f"{args.lm_steps} steps; {args.num_generated} generated sentences per model."
            + (" The latent models were continued from their checkpoints of an earlier run (exactly resumable); "
               "their training time is the sum of both runs." if args.resume else "") + "\n\n"
            f"Command: `python {' '.join(sys.argv)}` (results and sample sentences: `{args.output}`).")
    title = f"Text ({args.max_steps} steps, seed {args.seed}): latent EBM prior vs Gaussian-prior VAE vs LSTM LM"
    update_section(args.results_md, args.section, title, body)
    print("\n".join(table))


if __name__ == "__main__":
    main()
