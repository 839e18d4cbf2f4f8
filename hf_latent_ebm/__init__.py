"""hf-latent-ebm: latent-space energy-based prior models on the Hugging Face stack.

Importing the package registers every model kind (its config and head with `AutoConfig` / `AutoModel`, its card
and Hub tags; `register_model_kind` adds one). A model is a few parts chosen by name from registries:
`register_prior`, `register_decoder`, `register_encoder`, `register_sampler` and `register_learner` add one;
`register_modality` adds a modality kind to the multimodal model (see docs/extending.md).
"""

from .chet import ChetConfig, ChetForHealthEventPrediction
from .configuration_latent_ebm import LatentEBMConfig, LatentEBMModelConfig
from .configuration_latent_ebm_classification import LatentEBMClassificationConfig
from .configuration_latent_ebm_multimodal import LatentEBMMultimodalConfig, image_modality, text_modality
from .configuration_latent_ebm_molecule import LatentEBMMoleculeConfig
from .configuration_latent_ebm_text import LatentEBMTextConfig
from .decoders import DECODERS, Decoder, register_decoder
from .encoders import ENCODERS, Encoder, register_encoder
from .learners import LEARNERS, Learner, LearnerOutput, mle_losses, register_learner
from .modalities import MODALITIES, Modality, register_modality
from .model_kinds import MODEL_KINDS, ModelKind, Task, register_model_kind, register_task
from .modeling_latent_ebm import (LatentEBMForImageGeneration, LatentEBMModel, LatentEBMOutput,
                                  LatentEBMPreTrainedModel)
from .modeling_latent_ebm_classification import LatentEBMForSemiSupervisedClassification
from .modeling_latent_ebm_molecule import LatentEBMForMoleculeGeneration
from .modeling_latent_ebm_multimodal import LatentEBMForMultimodalGeneration
from .modeling_latent_ebm_text import LatentEBMForTextGeneration
from .pipelines import LatentEBMPipeline, LatentEBMPipelineOutput
from .priors import PRIORS, Prior, register_prior
from .samplers import (SAMPLERS, LangevinConfig, LangevinDivergenceError, LangevinOutput, LangevinSampler, Sampler,
                       SamplerOutput, register_sampler)

__version__ = "0.1.0"

__all__ = [
    "LatentEBMConfig",
    "LatentEBMForImageGeneration",
    "LatentEBMTextConfig",
    "LatentEBMForTextGeneration",
    "LatentEBMMoleculeConfig",
    "LatentEBMForMoleculeGeneration",
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
    "LangevinConfig",
    "LangevinOutput",
    "LangevinDivergenceError",
    "Sampler",
    "SamplerOutput",
    "SAMPLERS",
    "register_sampler",
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
    "MODEL_KINDS",
    "ModelKind",
    "Task",
    "register_model_kind",
    "register_task",
    "MODALITIES",
    "Modality",
    "register_modality",
]
