"""Samplers, by name: `SAMPLERS.get(config.sampler_type)`, each configured by its `config_class`; `register_sampler` adds one."""

from ..registry import Registry
from .base import SAMPLER_CHAINS, Sampler, SamplerOutput
from .langevin import LangevinConfig, LangevinDivergenceError, LangevinOutput, LangevinSampler

SAMPLERS = Registry("sampler", Sampler)
SAMPLERS.register("langevin", LangevinSampler)
register_sampler = SAMPLERS.register

__all__ = ["SAMPLERS", "Sampler", "LangevinConfig", "SamplerOutput", "SAMPLER_CHAINS", "LangevinSampler", "LangevinOutput",
           "LangevinDivergenceError", "register_sampler"]
