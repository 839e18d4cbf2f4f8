"""The names this module held before the learners became registered parts (`hf_latent_ebm.learners`)."""

from .learners import LearnerOutput, mle_losses, posterior_potential

MLELosses = LearnerOutput

__all__ = ["mle_losses", "posterior_potential", "MLELosses", "LearnerOutput"]
