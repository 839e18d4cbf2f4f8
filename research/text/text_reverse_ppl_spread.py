"""How much of a reverse-perplexity difference is the metric's own noise, and how much of a model's reverse PPL
comes from where its latents come from? Re-scores trained text models (e.g. the models `scripts/text_table.py`
leaves in its --work-dir) with several seeds of generation and of the reverse LM, the model held fixed.

    python research/text/text_reverse_ppl_spread.py runs/text_table/mle-ebm runs/text_table/vae-gaussian --seeds 1 2
    python research/text/text_reverse_ppl_spread.py runs/text_table/mle-ebm --latents prior posterior reference

--latents picks what the decoder is fed: "prior" (the model's own samples: short-run prior Langevin, or the Gaussian),
"posterior" (posterior latents of as many random training sentences: the aggregate posterior, what the prior should
match) and "reference" (draws from p0, the chains' start: the Gaussian without the learned energy). If "posterior"
scores far below "prior", the prior is the bottleneck; if "prior" equals "reference", the energy adds nothing.

The tokenizer is read from the first model folder that has one (text_table.py trains one tokenizer for all rows).
--merge tabulates outputs of earlier runs together instead (e.g. one process per model, run side by side), with the
paired difference between each model's own samples and the other latent sources over the models:

    python research/text/text_reverse_ppl_spread.py --merge runs/a.json runs/b.json --section text-latents
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

from hf_latent_ebm.utils import update_results_section as update_section

from hf_latent_ebm import LatentEBMForTextGeneration
from hf_latent_ebm.data import load_text_dataset
from hf_latent_ebm.metrics.text import language_model_perplexity, train_language_model


def _posterior_of_training_sentences(model, train_ids, num_samples, generator, chunk=500):
    chosen = train_ids[torch.randperm(train_ids.shape[0], generator=generator)[:num_samples]].to(model.device)
    return torch.cat([model.posterior_latents(chosen[i:i + chunk], generator) for i in range(0, len(chosen), chunk)])


LATENT_SOURCES = {
    "prior": lambda model, train_ids, n, generator: model.sample_latents(n, generator),
    "posterior": _posterior_of_training_sentences,
    "reference": lambda model, train_ids, n, generator: model.prior.sample_reference(n, generator),
}


def label(path, source):
    """A score's name: the model's own samples keep the plain path."""
    return path if source == "prior" else f"{path} (z from {source})"


def merge_outputs(paths: list[Path]) -> dict:
    """One output from several runs' outputs, which must share seeds, LM steps, sample count and latent sources."""
    records = [json.loads(Path(path).read_text()) for path in paths]
    shared = ("seeds", "lm_steps", "num_generated", "latents", "num_test", "data")
    for path, record in zip(paths, records):
        if any(record.get(key) != records[0].get(key) for key in shared):
            raise ValueError(f"{path} differs from {paths[0]} in {shared}")
    scores = {}
    for record in records:
        scores.update(record["reverse_ppl"])
    return {**{key: records[0].get(key) for key in shared}, "reverse_ppl": scores}


def source_differences(record: dict) -> list[str]:
    """For each latent source but the prior: the models' own samples minus that source, seed-averaged per model."""
    lines = []
    models = [name for name in record["reverse_ppl"] if " (z from " not in name]
    for source in (source for source in record["latents"] if source != "prior"):
        pairs = [(m, record["reverse_ppl"][m], record["reverse_ppl"][label(m, source)]) for m in models
                 if label(m, source) in record["reverse_ppl"]]
        if not pairs or "prior" not in record["latents"]:
            continue
        differences = [statistics.mean(own) - statistics.mean(other) for _, own, other in pairs]
        error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
        lines.append(f"- own samples minus z from {source}: " + ", ".join(f"{d:+.2f}" for d in differences)
                     + f"; mean {statistics.mean(differences):+.2f}, standard error {error:.2f}; "
                     f"{sum(d < 0 for d in differences)} of {len(differences)} below 0")
    return lines


def score_models(args) -> dict:
    """Reverse PPL of each model's samples from each latent source, for each seed."""
    tokenizer_dir = next((m for m in args.models if (Path(m) / "tokenizer.json").exists()), None)
    if tokenizer_dir is None:
        raise FileNotFoundError(f"none of {args.models} holds a tokenizer.json")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    splits = load_text_dataset(args.data)
    test_texts = list(splits["test"]["text"])[: args.num_test]
    models = {m: LatentEBMForTextGeneration.from_pretrained(m).eval() for m in args.models}
    for model in models.values():
        if model.tokenizer is None:
            model.set_tokenizer(tokenizer)
    max_length = next(iter(models.values())).config.max_length

    def tokenize(texts):
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")["input_ids"]

    test_ids = tokenize(test_texts)
    train_ids = tokenize(list(splits["train"]["text"])) if "posterior" in args.latents else None

    scores = {label(m, source): [] for m in args.models for source in args.latents}
    for seed in args.seeds:
        for path, model in models.items():
            for source in args.latents:
                generator = torch.Generator().manual_seed(seed)
                latents = LATENT_SOURCES[source](model, train_ids, args.num_generated, generator)
                # Token ids, not text: re-tokenised text need not give the generated ids back.
                generated = model.latents_to_ids(latents, generator=generator, suppress_unk=False).cpu()
                reverse_lm = train_language_model(generated, len(tokenizer), tokenizer.pad_token_id,
                                                  tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                  num_steps=args.lm_steps, batch_size=args.batch_size, seed=seed)
                scores[label(path, source)].append(language_model_perplexity(reverse_lm, test_ids))
                print(f"{label(path, source)} seed {seed}: reverse PPL {scores[label(path, source)][-1]:.2f}",
                      flush=True)

    return {"seeds": args.seeds, "lm_steps": args.lm_steps, "num_generated": args.num_generated,
            "latents": args.latents, "num_test": len(test_texts), "data": args.data, "reverse_ppl": scores}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="saved LatentEBMForTextGeneration folders")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="tabulate these earlier outputs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="generation and reverse-LM seeds")
    parser.add_argument("--data", default="kjv")
    parser.add_argument("--num-test", type=int, default=500)
    parser.add_argument("--num-generated", type=int, default=2000)
    parser.add_argument("--lm-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latents", nargs="+", default=["prior"], choices=list(LATENT_SOURCES),
                        help="where the decoder's latents come from (see above)")
    parser.add_argument("--output", default="docs/results/text/reverse-ppl-spread/reverse_ppl_spread.json")
    parser.add_argument("--results-md", default="docs/results.md")
    parser.add_argument("--section", default="text-reverse-ppl-spread")
    args = parser.parse_args()

    if args.merge:
        if args.models:
            raise ValueError("--merge tabulates earlier outputs: give no model folders with it")
        record = merge_outputs(args.merge)
    else:
        if not args.models:
            raise ValueError("give model folders to score, or --merge with earlier outputs")
        record = score_models(args)
        Path(args.output).write_text(json.dumps(record, indent=2))
    scores, seeds, latents = record["reverse_ppl"], record["seeds"], record["latents"]
    models = [name for name in scores if " (z from " not in name] or sorted(scores)
    rows = ["| model | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |",
            "|---" * (len(seeds) + 2) + "|"]
    for path, values in scores.items():
        summary = (f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1
                   else f"{values[0]:.2f}")
        rows.append(f"| `{path}` | " + " | ".join(f"{v:.2f}" for v in values) + f" | {summary} |")
    sources = "" if latents == ["prior"] else (
        " The decoder's latents: prior = the model's own samples, posterior = posterior latents of that many random "
        "training sentences, reference = draws from p0 (no learned energy).")
    differences = "\n".join(source_differences(record))
    test = f"{record['num_test']} {record['data']}" if record.get("num_test") else f"the {args.num_test} {args.data}"
    body = ("\n".join(rows) + f"\n\nEach cell: {record['num_generated']} sentences generated with that seed, an LSTM "
            f"LM trained on them for {record['lm_steps']} steps (same seed), scored on {test} test sentences; the "
            f"models themselves are fixed.{sources}" + (f"\n\nPaired by model (negative: the model's own samples "
                                                        f"score better):\n{differences}" if differences else "")
            + f"\n\nCommand: `python {' '.join(sys.argv)}`.")
    title = (f"Text: spread of reverse PPL from the metric alone ({', '.join(models)})" if latents == ["prior"]
             else f"Text: reverse PPL by where the latents come from ({', '.join(models)})")
    update_section(args.results_md, args.section, title, body)
    print(body)


if __name__ == "__main__":
    main()
