"""Learners, by name: `LEARNERS.get(config.learner)`; `register_learner` adds one."""

from ..registry import Registry
from .base import Learner, LearnerConfig, LearnerContext, LearnerOutput, LearnerSettings, posterior_potential
from .coupling import (CouplingMLEConfig, CouplingMLELearner, CouplingSettings, CouplingVariationalConfig,
                       CouplingVariationalLearner)
from .diffusion import DiffusionRecoveryLearner
from .mle import EncoderRefinedMLELearner, MLELearner, MLELearnerConfig, mle_losses
from .nce import MultiStageNCEConfig, MultiStageNCELearner, nce_losses
from .variational import ELBOLearner, VariationalEBMLearner, VariationalLearnerConfig

LEARNERS = Registry("learner", Learner)
LEARNERS.register("mle", MLELearner)
LEARNERS.register("mle_encoder", EncoderRefinedMLELearner)
LEARNERS.register("vae", ELBOLearner)
LEARNERS.register("vae_ebm", VariationalEBMLearner)
LEARNERS.register("coupling_vae", CouplingVariationalLearner)
LEARNERS.register("coupling_mle", CouplingMLELearner)
LEARNERS.register("nce", MultiStageNCELearner)
LEARNERS.register("diffusion", DiffusionRecoveryLearner)
register_learner = LEARNERS.register

__all__ = ["LEARNERS", "Learner", "LearnerOutput", "LearnerContext", "LearnerConfig", "LearnerSettings",
           "MLELearnerConfig", "VariationalLearnerConfig", "CouplingVariationalConfig", "CouplingMLEConfig",
           "CouplingSettings",
           "MLELearner", "EncoderRefinedMLELearner", "ELBOLearner", "VariationalEBMLearner",
           "CouplingVariationalLearner", "CouplingMLELearner", "MultiStageNCEConfig", "MultiStageNCELearner",
           "DiffusionRecoveryLearner", "nce_losses", "mle_losses", "posterior_potential", "register_learner"]
