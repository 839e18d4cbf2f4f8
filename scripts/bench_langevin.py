"""Benchmark: the library's training step, prior sampling and posterior inference against an eager loop written the
way the paper's code (bpucla/latent-space-EBM-prior, train_svhn.py) is, in one process on one device.

    python scripts/bench_langevin.py                   # CUDA if present: the paper's SVHN setting
    python scripts/bench_langevin.py --small           # CPU-sized defaults (batch 32, ngf 16)

Prints ratios (paper-style time / library time), samples per second and peak memory, and writes a JSON. Prior
sampling is also timed at batch 1000 and 10000 and at 30 / 60 / 120 prior steps, so the scaling shows.
"""

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration


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
def timed(function, device, repeats, warmup=2):
    for _ in range(warmup):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / repeats
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="CPU-sized: batch 32, ngf 16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--output", default="docs/results/image/benchmarks/bench_langevin.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch, ngf, nz, ndf, channels = (32, 16, 100, 200, 3) if args.small else (100, 64, 100, 200, 3)
    repeats = args.repeats or (3 if device.type == "cpu" else 20)
    torch.manual_seed(0)
    x = torch.rand(batch, channels, 32, 32, device=device) * 2 - 1

    paper_g, paper_e = PaperGenerator(nz, ngf, channels).to(device), PaperEnergy(nz, ndf).to(device)
    opt_g = torch.optim.Adam(paper_g.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_e = torch.optim.Adam(paper_e.parameters(), lr=2e-5, betas=(0.5, 0.999))
    config = LatentEBMConfig.paper_svhn(decoder_base_channels=ngf)
    model = LatentEBMForImageGeneration(config).to(device)
    optimizer = model.build_optimizer()
    generator = torch.Generator(device=device).manual_seed(0)

    def library_step():
        loss = model(x, generator=generator).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    rows = {}
    rows["training_step"] = {
        "paper_s": timed(lambda: paper_training_step(x, paper_g, paper_e, opt_g, opt_e, nz), device, repeats),
        "library_s": timed(library_step, device, repeats)}
    model.eval()
    rows["prior_sampling_60_steps"] = {
        "paper_s": timed(lambda: paper_g(paper_prior_langevin(torch.randn(batch, nz, 1, 1, device=device), paper_e,
                                                              60, 0.4)).detach(), device, repeats),
        "library_s": timed(lambda: model.sample(batch, generator), device, repeats)}
    rows["posterior_inference_20_steps"] = {
        "paper_s": timed(lambda: paper_posterior_langevin(torch.randn(batch, nz, 1, 1, device=device), x, paper_g,
                                                          paper_e, 20, 0.1), device, repeats),
        "library_s": timed(lambda: model.infer_latents(x, generator), device, repeats)}
    scaling = {}
    for size in (1000, 10000):
        for steps in (30, 60, 120):
            seconds, peak = timed(lambda: model.decode(model.sample_latents(size, generator, num_steps=steps)),
                                  device, max(1, repeats // 2), warmup=1)
            scaling[f"batch{size}_steps{steps}"] = {"library_s": seconds, "samples_per_s": size / seconds,
                                                    "peak_mib": peak}

    table = ["| measurement | paper-style eager | library | ratio (paper / library) | library samples/s |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        (paper_s, paper_peak), (library_s, library_peak) = row["paper_s"], row["library_s"]
        row.update(ratio=paper_s / library_s, samples_per_s=batch / library_s, paper_peak_mib=paper_peak,
                   library_peak_mib=library_peak, paper_s=paper_s, library_s=library_s)
        table.append(f"| {name} (batch {batch}) | {paper_s * 1e3:.1f} ms | {library_s * 1e3:.1f} ms | "
                     f"{row['ratio']:.2f}x | {row['samples_per_s']:.0f} |")
    for name, row in scaling.items():
        table.append(f"| prior sampling {name} | – | {row['library_s'] * 1e3:.1f} ms | – | "
                     f"{row['samples_per_s']:.0f} |")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    result = {"device": device_name, "torch": torch.__version__, "batch": batch, "ngf": ngf, "nz": nz, "ndf": ndf,
              "repeats": repeats, "rows": rows, "scaling": scaling,
              "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"device: {device_name}")
    print("\n".join(table))


if __name__ == "__main__":
    main()
