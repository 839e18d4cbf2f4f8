"""Model-level evaluations shared by `hf-latent-ebm evaluate` and the paper-table scripts."""

import torch

from .metrics.anomaly import auprc


def _batches(count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)


@torch.no_grad()
def generate_images(model, num_samples: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """num_samples images from the model's prior, as uint8 (N, C, H, W) on the CPU (what FID scores)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    chunks = [model.sample(end - start, generator) for start, end in _batches(num_samples, batch_size)]
    return ((torch.cat(chunks).cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def fid_against(model, real_pixel_values: torch.Tensor, num_samples: int, seed: int = 0,
                inception_device: str = "cpu") -> float:
    """FID of num_samples prior samples against real images (floats in [-1, 1])."""
    from .metrics.fid import StreamingFID

    metric = StreamingFID(device=inception_device)
    metric.update(real_pixel_values, real=True)
    metric.update(generate_images(model, num_samples, seed), real=False)
    return metric.compute()


@torch.no_grad()
def reconstruction_mse(model, pixel_values: torch.Tensor, seed: int = 0, batch_size: int = 500) -> float:
    """Mean squared error per pixel between images in [-1, 1] and g(z+) at posterior Langevin samples z+."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    total = 0.0
    for start, end in _batches(pixel_values.shape[0], batch_size):
        batch = pixel_values[start:end].to(model.device)
        total += (model.reconstruct(batch, generator) - batch).pow(2).sum().item()
    return total / pixel_values.numel()


@torch.no_grad()
def anomaly_scores(model, pixel_values: torch.Tensor, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return torch.cat([model.anomaly_score(pixel_values[start:end].to(model.device), generator).cpu()
                      for start, end in _batches(pixel_values.shape[0], batch_size)])


def anomaly_auprc(model, pixel_values: torch.Tensor, labels: torch.Tensor, anomaly_label: int, seed: int = 0) -> float:
    """AUPRC of model.anomaly_score with the images of `anomaly_label` as positives (Pang et al. 2020, Table 3)."""
    return auprc(anomaly_scores(model, pixel_values, seed), labels == anomaly_label)
