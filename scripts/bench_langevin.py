"""Benchmark: the library's training step, prior sampling and posterior inference, eager and on the fast path
(each Langevin step one compiled function, a CUDA graph on CUDA), against an eager loop written the way the
paper's code (bpucla/latent-space-EBM-prior, train_svhn.py) is, in one process on one device.

    python scripts/bench_langevin.py                  # on CUDA: the paper's SVHN setting (batch 100, ngf 64)
    python scripts/bench_langevin.py --small          # CPU-sized defaults (batch 32, ngf 16), the default on CPU

Before timing it checks that the fast path runs the eager chain (same noise, max difference of the chains and of a
training step's loss) and trains two copies of the default MNIST model, one per path, for --curve-steps steps,
recording both loss curves. Then it times, per measurement, the paper-style eager code, the library on its eager
path and the library on its fast path: ratios (paper / library), samples per second and (on CUDA) peak memory;
prior sampling also at larger batches and 30 / 60 / 120 steps; and the text model's training step, the plain
padded scoring against the library's fastest path. Writes a JSON (docs/results/image/benchmarks/).
"""

import argparse
import json
import resource
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hf_latent_ebm import (LatentEBMConfig, LatentEBMForImageGeneration, LatentEBMForTextGeneration,
                           LatentEBMTextConfig)
from hf_latent_ebm.utils import describe_device, update_results_section


# ---- the paper-style eager baseline (written independently, after train_svhn.py's structure) -------------------
class PaperGenerator(nn.Module):
    def __init__(self, nz, ngf, channels):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 2, channels, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.net(z)


class PaperEnergy(nn.Module):
    def __init__(self, nz, ndf):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(nz, ndf), nn.GELU(), nn.Linear(ndf, ndf), nn.GELU(), nn.Linear(ndf, 1))

    def forward(self, z):
        return self.net(z.squeeze()).view(-1, 1, 1, 1)


def paper_prior_langevin(z, energy, steps, step_size, prior_sigma=1.0):
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        en = energy(z)
        z_grad = torch.autograd.grad(en.sum() + (z * z).sum() / (2 * prior_sigma**2), z)[0]
        z = z - 0.5 * step_size**2 * z_grad + step_size * torch.randn_like(z)
    return z.detach()


def paper_posterior_langevin(z, x, generator, energy, steps, step_size, sigma=0.3, prior_sigma=1.0):
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        x_hat = generator(z)
        log_likelihood = F.mse_loss(x_hat, x, reduction="sum") / (2 * sigma**2)
        en = energy(z)
        z_grad = torch.autograd.grad(log_likelihood + en.sum() + (z * z).sum() / (2 * prior_sigma**2), z)[0]
        z = z - 0.5 * step_size**2 * z_grad + step_size * torch.randn_like(z)
    return z.detach()


def paper_training_step(x, generator, energy, opt_g, opt_e, nz, prior_steps=60, posterior_steps=20):
    batch = x.shape[0]
    z_g0 = torch.randn(batch, nz, 1, 1, device=x.device)
    z_e0 = torch.randn(batch, nz, 1, 1, device=x.device)
    z_g = paper_posterior_langevin(z_g0, x, generator, energy, posterior_steps, 0.1)
    z_e = paper_prior_langevin(z_e0, energy, prior_steps, 0.4)
    opt_g.zero_grad()
    loss_g = F.mse_loss(generator(z_g), x, reduction="sum") / batch
    loss_g.backward()
    opt_g.step()
    opt_e.zero_grad()
    loss_e = energy(z_g).mean() - energy(z_e).mean()
    loss_e.backward()
    opt_e.step()


# ---- timing --------------------------------------------------------------------------------------------------------
def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(functions: dict, device, repeats, warmup=3) -> dict:
    """Per function: seconds per call, seconds of its first call (on the fast path that is where compiling happens)
    and, on CUDA, its peak memory (MiB allocated above what was live before its first call, so a variant's CUDA
    graph pools count towards it and other variants' do not). The timed calls are interleaved across the functions,
    so drifts of the machine (clocks, other load) hit every variant alike."""
    results = {}
    for name, function in functions.items():
        synchronize(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        function()
        synchronize(device)
        results[name] = {"first_call_s": time.perf_counter() - started, "s": 0.0, "peak_mib": None}
        for _ in range(warmup - 1):
            function()
        synchronize(device)
        if device.type == "cuda":
            results[name]["peak_mib"] = (torch.cuda.max_memory_allocated() - before) / 2**20
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            synchronize(device)
            results[name]["s"] += (time.perf_counter() - started) / repeats
    return results


def library_model(config, device, state=None, **settings):
    """The library's model in the paper's SVHN setting with the benchmark's overrides (`config`) and `settings`."""
    model = LatentEBMForImageGeneration(LatentEBMConfig.paper_svhn(**config, **settings)).to(device)
    if state is not None:
        model.load_state_dict(state)
    return model


def library_step(model, optimizer, inputs, generator):
    def step():
        with model.inputs_checked():  # as the trainer: the inputs were made valid, no per-step value checks
            output = model(**inputs, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        return output.loss_terms["decoder_loss"]
    return step


def seeded(device, seed):
    return torch.Generator(device=device).manual_seed(seed)


# ---- checks before timing --------------------------------------------------------------------------------------------
def equivalence(config, device, x):
    """The fast path against the eager path on the same weights and noise."""
    torch.manual_seed(0)
    eager = library_model(config, device, sampler_config={"fast_path": "eager"})
    fast = library_model(config, device, eager.state_dict(), sampler_config={"fast_path": "compile"})
    batch = x.shape[0]
    prior = [model.sample_latents(batch, seeded(device, 1)) for model in (eager, fast)]
    posterior = [model.posterior_latents(x, seeded(device, 2)) for model in (eager, fast)]
    losses = [model(x, generator=seeded(device, 3)).loss.detach() for model in (eager, fast)]
    return {"prior_chain_max_abs_diff": float((prior[0] - prior[1]).abs().max()),
            "posterior_chain_max_abs_diff": float((posterior[0] - posterior[1]).abs().max()),
            "training_loss_rel_diff": float(((losses[0] - losses[1]) / losses[0]).abs())}


def loss_curves(device, num_steps, batch_size):
    """The default MNIST model trained num_steps from the same weights and data order on each path."""
    from hf_latent_ebm.data import load_image_dataset

    images = load_image_dataset("mnist", "train")["pixel_values"][: num_steps * batch_size]
    images = (images.float() / 127.5 - 1).to(device)
    curves = {}
    for fast_path in ("eager", "compile"):
        torch.manual_seed(0)
        model = LatentEBMForImageGeneration(LatentEBMConfig(sampler_config={"fast_path": fast_path})).to(device)
        optimizer, generator, curve = model.build_optimizer(), seeded(device, 0), []
        synchronize(device)
        started = time.perf_counter()
        for step in range(num_steps):
            curve.append(library_step(model, optimizer,
                                      {"pixel_values": images[step * batch_size:(step + 1) * batch_size]},
                                      generator)())
        synchronize(device)
        curves[fast_path] = {"decoder_loss": [float(value) for value in curve],
                             "seconds": time.perf_counter() - started}
    eager, fast = (torch.tensor(curves[name]["decoder_loss"]) for name in ("eager", "compile"))
    curves["max_rel_diff"] = float(((eager - fast) / eager).abs().max())
    return curves


# ---- text ------------------------------------------------------------------------------------------------------------
def padded_negative_log_likelihood(decoder, input_ids, latents):
    """The plain scoring the SRI code does: logits at every position, padding masked out afterwards."""
    logits = decoder(input_ids[:, :-1], latents)
    targets = input_ids[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")
    return (nll * (targets != decoder.pad_token_id)).sum(dim=1)


def text_rows(device, batch_size, repeats):
    """The text model's training step: the plain padded scoring on the eager path against the library's scoring
    (packed recurrence, projection at real tokens) on its fastest path for the device."""
    generator = torch.Generator().manual_seed(0)
    vocab, max_length = 2000, 40
    lengths = torch.randint(5, max_length - 1, (batch_size,), generator=generator)
    ids = torch.randint(3, vocab, (batch_size, max_length), generator=generator)
    positions = torch.arange(max_length)
    ids = torch.where(positions < lengths[:, None] + 1, ids, 0)  # pad (id 0) after the tokens
    ids[:, 0] = 1  # <bos>
    ids[torch.arange(batch_size), lengths + 1] = 2  # <eos>
    ids = ids[:, : int(lengths.max()) + 2].to(device)
    fastest = {"sampler_config": {"fast_path": "auto"}, "decoder_autocast": "bfloat16" if device.type == "cuda" else None}
    variants = {"plain padded scoring, eager": {"sampler_config": {"fast_path": "eager"}},
                "library, eager": {"sampler_config": {"fast_path": "eager"}},
                f"library, fastest ({json.dumps(fastest)})": fastest}
    steps = {}
    for name, settings in variants.items():
        torch.manual_seed(0)
        model = LatentEBMForTextGeneration(LatentEBMTextConfig(vocab_size=vocab, max_length=max_length,
                                                               **settings)).to(device)
        if name.startswith("plain"):
            decoder = model.decoder
            decoder.negative_log_likelihood = lambda input_ids, latents: padded_negative_log_likelihood(
                decoder, input_ids, latents)
            decoder.compact = lambda input_ids: input_ids
        steps[name] = library_step(model, model.build_optimizer(), {"input_ids": ids}, seeded(device, 0))
    rows = timed(steps, device, repeats)
    baseline = rows["plain padded scoring, eager"]["s"]
    for row in rows.values():
        row["ratio"] = baseline / row["s"]
    return {"batch": batch_size, "real_token_fraction": float((ids[:, 1:] != 0).float().mean()), "rows": rows}


# ---- main ------------------------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", default=None,
                        help="CPU-sized: batch 32, ngf 16, scaling batches 256 and 1024 (the default on CPU)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--curve-steps", type=int, default=None, help="steps of the two loss curves")
    parser.add_argument("--skip", nargs="*", default=[], choices=("curves", "scaling", "text"))
    parser.add_argument("--output", default=None)
    parser.add_argument("--results-md", default="docs/results.md",
                        help="where the tables go, as section bench_langevin_<device> (empty: nowhere)")
    parser.add_argument("--from-json", default=None,
                        help="write the results.md section from a JSON this script wrote (on another machine) and stop")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        device_type = "cpu" if result["device"].startswith("CPU") else "cuda"
        write_results_section(result, args.results_md, device_type, args.from_json)
        return
    device = torch.device(args.device)
    small = args.small if args.small is not None else device.type == "cpu"
    batch, ngf, nz, ndf, channels = (32, 16, 100, 200, 3) if small else (100, 64, 100, 200, 3)
    scaling_batches = (256, 1024) if small else (1000, 10000)
    repeats = args.repeats or (3 if device.type == "cpu" else 20)
    curve_steps = args.curve_steps or (20 if device.type == "cpu" else 200)
    output = Path(args.output or f"docs/results/image/benchmarks/bench_langevin_{device.type}.json")
    device_name = describe_device(device)
    result = {"device": device_name, "torch": torch.__version__, "command": "python " + " ".join(sys.argv),
              "batch": batch, "ngf": ngf, "nz": nz, "ndf": ndf, "repeats": repeats, "errors": {}}

    def save():
        result["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2))

    def section(name, compute):
        # One failing measurement (on a device seen for the first time) must not lose the others.
        print(f"[bench] {name} ...", flush=True)
        try:
            result[name] = compute()
        except Exception as error:  # noqa: BLE001 - recorded in the JSON and printed
            result["errors"][name] = f"{type(error).__name__}: {error}"
            traceback.print_exc()
        save()

    torch.manual_seed(0)
    x = torch.rand(batch, channels, 32, 32, device=device) * 2 - 1
    config = {"decoder_config": {"base_channels": ngf}, "encoder_config": {"base_channels": ngf}}  # paper_svhn's
    section("equivalence", lambda: equivalence(config, device, x))
    if "curves" not in args.skip:
        section("loss_curves", lambda: loss_curves(device, curve_steps, 64))

    def main_rows():
        paper_g, paper_e = PaperGenerator(nz, ngf, channels).to(device), PaperEnergy(nz, ndf).to(device)
        opt_g = torch.optim.Adam(paper_g.parameters(), lr=1e-4, betas=(0.5, 0.999))
        opt_e = torch.optim.Adam(paper_e.parameters(), lr=2e-5, betas=(0.5, 0.999))
        paper = {
            "training_step": lambda: paper_training_step(x, paper_g, paper_e, opt_g, opt_e, nz),
            "prior_sampling_60_steps": lambda: paper_g(paper_prior_langevin(
                torch.randn(batch, nz, 1, 1, device=device), paper_e, 60, 0.4)).detach(),
            "posterior_inference_20_steps": lambda: paper_posterior_langevin(
                torch.randn(batch, nz, 1, 1, device=device), x, paper_g, paper_e, 20, 0.1)}
        functions = {name: {"paper": function} for name, function in paper.items()}
        variants = {"eager": {}, "fast": {"sampler_config": {"fast_path": "compile"}}}
        if device.type == "cuda":
            variants["fast_bf16_decoder"] = {"sampler_config": {"fast_path": "compile"}, "decoder_autocast": "bfloat16"}
        for variant, settings in variants.items():
            torch.manual_seed(0)
            # Kept in training mode throughout: neither part behaves differently in eval mode, and one mode means
            # one compiled graph per chain for the step, the sampling and the inference alike.
            model = library_model(config, device, **settings)
            generator = seeded(device, 0)
            functions["training_step"][variant] = library_step(model, model.build_optimizer(), {"pixel_values": x},
                                                               generator)
            functions["prior_sampling_60_steps"][variant] = \
                lambda model=model, generator=generator: model.sample(batch, generator)
            functions["posterior_inference_20_steps"][variant] = \
                lambda model=model, generator=generator: model.posterior_latents(x, generator)
        rows = {name: timed(group, device, repeats) for name, group in functions.items()}
        for row in rows.values():
            for variant in variants:
                row[variant]["ratio"] = row["paper"]["s"] / row[variant]["s"]
                row[variant]["samples_per_s"] = batch / row[variant]["s"]
        return rows

    section("rows", main_rows)

    def scaling():
        paper_g, paper_e = PaperGenerator(nz, ngf, channels).to(device), PaperEnergy(nz, ndf).to(device)
        torch.manual_seed(0)
        model = library_model(config, device)
        generator, rows = seeded(device, 0), {}
        for size in scaling_batches:
            for steps in (30, 60, 120):
                row = timed({"paper": lambda: paper_g(paper_prior_langevin(
                                 torch.randn(size, nz, 1, 1, device=device), paper_e, steps, 0.4)).detach(),
                             "library": lambda: model.decode(model.sample_latents(size, generator, num_steps=steps))},
                            device, max(1, repeats // 4), warmup=2)
                row.update(ratio=row["paper"]["s"] / row["library"]["s"], samples_per_s=size / row["library"]["s"])
                rows[f"batch{size}_steps{steps}"] = row
        return {"fast_path": "auto", "rows": rows}

    if "scaling" not in args.skip:
        section("scaling", scaling)
    if "text" not in args.skip:
        section("text_training_step", lambda: text_rows(device, 32, repeats))
    print(f"device: {device_name}\n" + "\n".join(markdown_tables(result)))
    if args.results_md:
        write_results_section(result, args.results_md, device.type, output)
    print(f"wrote {output}")


def write_results_section(result, results_md, device_type, output) -> None:
    body = "\n\n".join(["\n".join(markdown_tables(result)),
                        f"Device: {result['device']}, torch {result['torch']}. Times per call (mean of {result['repeats']} "
                        "interleaved calls after warm-up); ratios are paper-style eager time / library time. "
                        f"Command: `{result['command']}` (results: `{output}`); reading in docs/performance.md."])
    update_results_section(results_md, f"bench_langevin_{device_type}",
                           f"Langevin chains and training step against the paper-style eager loop ({result['device']})",
                           body)


def markdown_tables(result) -> list[str]:
    lines = []
    if "equivalence" in result:
        lines.append(f"equivalence (fast vs eager, same noise): {json.dumps(result['equivalence'])}")
        lines.append("")
    if "loss_curves" in result:
        curves = result["loss_curves"]
        lines.append(f"loss curves ({len(curves['eager']['decoder_loss'])} steps): max relative difference "
                     f"{curves['max_rel_diff']:.2e}; first/last eager {curves['eager']['decoder_loss'][0]:.2f} / "
                     f"{curves['eager']['decoder_loss'][-1]:.2f}, fast {curves['compile']['decoder_loss'][0]:.2f} / "
                     f"{curves['compile']['decoder_loss'][-1]:.2f}")
    if "rows" in result:
        variants = [name for name in next(iter(result["rows"].values())) if name != "paper"]
        lines += ["", "| measurement (batch %d) | paper-style eager | " % result["batch"]
                  + " | ".join(f"library {name}" for name in variants) + " |",
                  "|---" * (2 + len(variants)) + "|"]
        for name, row in result["rows"].items():
            cells = [f"{row[v]['s'] * 1e3:.1f} ms ({row[v]['ratio']:.2f}x)" for v in variants]
            lines.append(f"| {name} | {row['paper']['s'] * 1e3:.1f} ms | " + " | ".join(cells) + " |")
        if result["rows"]["training_step"]["paper"]["peak_mib"] is not None:
            lines.append("")
            lines.append("peak MiB: " + json.dumps({name: {v: round(row[v]["peak_mib"]) for v in row}
                                                    for name, row in result["rows"].items()}))
    if "scaling" in result:
        lines += ["", "| prior sampling + decode | paper-style eager | library (fast path auto) | ratio | samples/s |",
                  "|---|---|---|---|---|"]
        for name, row in result["scaling"]["rows"].items():
            lines.append(f"| {name} | {row['paper']['s'] * 1e3:.1f} ms | {row['library']['s'] * 1e3:.1f} ms | "
                         f"{row['ratio']:.2f}x | {row['samples_per_s']:.0f} |")
    if "text_training_step" in result:
        text = result["text_training_step"]
        lines += ["", f"| text training step (batch {text['batch']}) | time | ratio |", "|---|---|---|"]
        lines += [f"| {name} | {row['s'] * 1e3:.1f} ms | {row['ratio']:.2f}x |" for name, row in text["rows"].items()]
    if result["errors"]:
        lines.append("")
        lines.append(f"errors: {json.dumps(result['errors'])}")
    return lines


if __name__ == "__main__":
    main()
