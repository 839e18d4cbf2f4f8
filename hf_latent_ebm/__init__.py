"""hf-latent-ebm: latent-space energy-based prior models on the Hugging Face stack.

Importing the package registers the configs and models with `AutoConfig` / `AutoModel`. A model is a few parts
chosen by name from registries: `register_prior`, `register_decoder`, `register_encoder` and `register_learner`
add one (see docs/extending.md).
"""

from transformers import AutoConfig, AutoModel

from .chet import ChetConfig, ChetForHealthEventPrediction
from .configuration_latent_ebm import LatentEBMConfig, LatentEBMModelConfig
from .configuration_latent_ebm_classification import LatentEBMClassificationConfig
from .configuration_latent_ebm_multimodal import LatentEBMMultimodalConfig, image_modality, text_modality
from .configuration_latent_ebm_text import LatentEBMTextConfig
from .decoders import DECODERS, Decoder, register_decoder
from .encoders import ENCODERS, Encoder, register_encoder
from .langevin import LangevinDivergenceError, LangevinOutput, LangevinSampler
from .learners import LEARNERS, Learner, LearnerOutput, mle_losses, register_learner
from .modeling_latent_ebm import (LatentEBMForImageGeneration, LatentEBMModel, LatentEBMOutput,
                                  LatentEBMPreTrainedModel)
from .modeling_latent_ebm_classification import LatentEBMForSemiSupervisedClassification
from .modeling_latent_ebm_multimodal import LatentEBMForMultimodalGeneration
from .modeling_latent_ebm_text import LatentEBMForTextGeneration
from .pipelines import LatentEBMPipeline, LatentEBMPipelineOutput
from .priors import PRIORS, Prior, register_prior

for _config, _model in ((LatentEBMConfig, LatentEBMForImageGeneration),
                        (LatentEBMTextConfig, LatentEBMForTextGeneration), (LatentEBMModelConfig, LatentEBMModel),
                        (LatentEBMClassificationConfig, LatentEBMForSemiSupervisedClassification),
                        (LatentEBMMultimodalConfig, LatentEBMForMultimodalGeneration),
                        (ChetConfig, ChetForHealthEventPrediction)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "LatentEBMConfig",
    "LatentEBMForImageGeneration",
    "LatentEBMTextConfig",
    "LatentEBMForTextGeneration",
    "LatentEBMModelConfig",
    "LatentEBMModel",
    "LatentEBMClassificationConfig",
    "LatentEBMForSemiSupervisedClassification",
    "LatentEBMMultimodalConfig",
    "LatentEBMForMultimodalGeneration",
    "ChetConfig",
    "ChetForHealthEventPrediction",
    "image_modality",
    "text_modality",
    "LatentEBMOutput",
    "LatentEBMPreTrainedModel",
    "LatentEBMPipeline",
    "LatentEBMPipelineOutput",
    "LangevinSampler",
    "LangevinOutput",
    "LangevinDivergenceError",
    "mle_losses",
    "Prior",
    "Decoder",
    "Encoder",
    "Learner",
    "LearnerOutput",
    "PRIORS",
    "DECODERS",
    "ENCODERS",
    "LEARNERS",
    "register_prior",
    "register_decoder",
    "register_encoder",
    "register_learner",
]
