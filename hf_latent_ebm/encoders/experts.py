"""q(z | x_1, ..., x_M) from one registered encoder per modality, combined by mixture and/or product of experts."""

import dataclasses
import itertools

import torch
from huggingface_hub.dataclasses import strict

from ..decoders.multimodal import MODALITY_MASK, batch_size_of, build_modality_parts, to_scored_values
from ..distributions import mixture_log_density
from ..registry import PartConfig
from .base import ENCODERS, Encoder

AGGREGATIONS = ("moe", "poe", "mopoe")


def expert_subsets(num_modalities: int, aggregation: str) -> torch.Tensor:
    """The modality subsets whose products are the mixture's components, as a (K, M) bool matrix: the M single
    modalities (mixture of experts, MMVAE), all of them (product of experts, MVAE), or every non-empty subset
    (mixture of products of experts, MoPoE-VAE)."""
    if aggregation == "moe":
        return torch.eye(num_modalities, dtype=torch.bool)
    if aggregation == "poe":
        return torch.ones(1, num_modalities, dtype=torch.bool)
    if aggregation == "mopoe":
        rows = [row for row in itertools.product((False, True), repeat=num_modalities) if any(row)]
        return torch.tensor(rows, dtype=torch.bool)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


@strict
@dataclasses.dataclass
class ExpertsEncoderConfig(PartConfig):
    """Settings of the experts encoder: `modalities` (name -> spec with `encoder_type` / `encoder_config`) and the
    `aggregation` ("moe", "poe" or "mopoe"); the multimodal model's config supplies both."""

    modalities: dict
    aggregation: str = "moe"

    def validate_aggregation(self):
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")


class ExpertsEncoder(Encoder):
    r"""
    One Gaussian expert q_m(z | x_m) per modality (any registered encoder), combined over the modalities each example
    has into a mixture of products of experts: each component is the product of the experts of one subset of
    modalities (precisions add, means are precision-weighted), and the mixture weighs uniformly the subsets the
    example can form. `aggregation` picks the subsets: "moe" the single modalities (MMVAE), "poe" one product of
    all present modalities (MVAE, without a prior expert), "mopoe" every non-empty subset (MoPoE-VAE; Sutter et al.
    2021). Conditioning on a subset S of modalities is the same computation with the others masked out.

    Args:
        latent_dim (`int`): Dimension of z.
        modalities (`dict`): Name -> spec with `encoder_type` (a registered encoder) and `encoder_config`.
        aggregation (`str`): "moe", "poe" or "mopoe".
    """

    modality = "multimodal"
    config_class = ExpertsEncoderConfig

    def __init__(self, latent_dim: int, modalities: dict, aggregation: str):
        super().__init__()
        self.names, self.aggregation = tuple(modalities), aggregation
        self.kinds = {name: spec["kind"] for name, spec in modalities.items()}
        self.encoders = build_modality_parts(ENCODERS, "encoder", latent_dim, modalities)

        self.latent_dim = latent_dim

    def experts(self, observations: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each modality's expert: means and log-variances (batch, M, latent_dim) and which are present (batch, M);
        a modality absent from the dict gives zeros, masked out."""
        batch_size = batch_size_of(observations)
        present = observations[MODALITY_MASK]
        means = present.new_zeros(batch_size, len(self.names), self.latent_dim, dtype=torch.float32)
        log_variances = torch.zeros_like(means)
        for index, name in enumerate(self.names):
            if name in observations:
                means[:, index], log_variances[:, index] = self.encoders[name](
                    to_scored_values(self.kinds[name], observations[name]))
        held = torch.tensor([name in observations for name in self.names], device=present.device)
        return means, log_variances, present & held

    def mixture(self, observations: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        means, log_variances, present = self.experts(observations)
        # Built per call, not kept as a buffer: transformers builds models on the meta device when loading and
        # restores saved tensors only, so a non-persistent buffer would come back empty.
        subsets = expert_subsets(len(self.names), self.aggregation).to(present.device)
        membership = subsets[None] & present[:, None]  # (batch, K, M): the present members of each subset
        valid = membership.any(dim=-1)
        if self.aggregation != "poe":  # a subset with a missing member would repeat a smaller one
            valid &= (subsets[None] <= present[:, None]).all(dim=-1)
        weight = membership[..., None].to(means.dtype)
        precisions = (-log_variances).exp()[:, None]  # (batch, 1, M, latent_dim)
        precision = (weight * precisions).sum(dim=2)
        # Components no example can form get a harmless N(0, 1) and weight 0, so no inf or NaN reaches a gradient.
        safe_precision = torch.where(valid[..., None], precision, torch.ones_like(precision))
        component_means = (weight * precisions * means[:, None]).sum(dim=2) / safe_precision
        component_log_variances = -safe_precision.log()
        weights = valid.to(means.dtype)
        return component_means, component_log_variances, weights / weights.sum(dim=1, keepdim=True)

    def forward(self, observations: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's moment-matched diagonal Gaussian (mean, log_variance)."""
        means, log_variances, weights = self.mixture(observations)
        weights = weights[..., None]
        mean = (weights * means).sum(dim=1)
        second_moment = (weights * (log_variances.exp() + means.pow(2))).sum(dim=1)
        return mean, (second_moment - mean.pow(2)).clamp_min(1e-8).log()

    def log_density(self, observations: dict, latents: torch.Tensor) -> torch.Tensor:
        return mixture_log_density(latents, *self.mixture(observations))


__all__ = ["ExpertsEncoder", "AGGREGATIONS", "expert_subsets"]
