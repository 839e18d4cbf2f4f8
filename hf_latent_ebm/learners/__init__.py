"""Learners, by name: `LEARNERS.get(config.learner)`; `register_learner` adds one."""

from ..registry import Registry
from .base import Learner, LearnerContext, LearnerOutput, LearnerSettings, posterior_potential
from .coupling import CouplingMLELearner, CouplingSettings, CouplingVariationalLearner
from .mle import EncoderRefinedMLELearner, MLELearner, mle_losses
from .variational import ELBOLearner, VariationalEBMLearner

LEARNERS = Registry("learner", Learner)
LEARNERS.register("mle", MLELearner)
LEARNERS.register("mle_encoder", EncoderRefinedMLELearner)
LEARNERS.register("vae", ELBOLearner)
LEARNERS.register("vae_ebm", VariationalEBMLearner)
LEARNERS.register("coupling_vae", CouplingVariationalLearner)
LEARNERS.register("coupling_mle", CouplingMLELearner)
register_learner = LEARNERS.register

__all__ = ["LEARNERS", "Learner", "LearnerOutput", "LearnerContext", "LearnerSettings", "CouplingSettings",
           "MLELearner", "EncoderRefinedMLELearner", "ELBOLearner", "VariationalEBMLearner",
           "CouplingVariationalLearner", "CouplingMLELearner", "mle_losses", "posterior_potential", "register_learner"]
