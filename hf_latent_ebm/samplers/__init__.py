"""Samplers, by name: `SAMPLERS.get(config.sampler_type)`; `register_sampler` adds one."""

from ..registry import Registry
from .base import SAMPLER_CHAINS, Sampler, SamplerOutput
from .langevin import LangevinDivergenceError, LangevinOutput, LangevinSampler

SAMPLERS = Registry("sampler", Sampler)
SAMPLERS.register("langevin", LangevinSampler)
register_sampler = SAMPLERS.register

__all__ = ["SAMPLERS", "Sampler", "SamplerOutput", "SAMPLER_CHAINS", "LangevinSampler", "LangevinOutput",
           "LangevinDivergenceError", "register_sampler"]
