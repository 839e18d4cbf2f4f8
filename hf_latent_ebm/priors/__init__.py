"""Priors over the latent z, by name: `PRIORS.get(config.prior_type)`; `register_prior` adds one."""

from ..registry import Registry
from .base import Prior, PriorConfig
from .coupling import CouplingPrior
from .diffusion import DiffusionPrior, DiffusionPriorConfig
from .energy import ACTIVATIONS, EnergyPrior, EnergyPriorConfig
from .gaussian import GaussianPrior
from .hierarchical import HierarchicalPrior, HierarchicalPriorConfig
from .spike_slab import SpikeSlabPrior, SpikeSlabPriorConfig

PRIORS = Registry("prior", Prior)
PRIORS.register("ebm", EnergyPrior)
PRIORS.register("gaussian", GaussianPrior)
PRIORS.register("coupling", CouplingPrior)
PRIORS.register("spike_slab", SpikeSlabPrior)
PRIORS.register("hierarchical", HierarchicalPrior)
PRIORS.register("diffusion", DiffusionPrior)
register_prior = PRIORS.register

__all__ = ["PRIORS", "Prior", "PriorConfig", "EnergyPriorConfig", "EnergyPrior", "CouplingPrior", "GaussianPrior",
           "SpikeSlabPrior", "SpikeSlabPriorConfig", "HierarchicalPrior",
           "HierarchicalPriorConfig", "DiffusionPrior", "DiffusionPriorConfig", "ACTIVATIONS", "register_prior"]
