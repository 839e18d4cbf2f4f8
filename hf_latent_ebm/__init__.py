"""hf-latent-ebm: latent-space energy-based prior models on the Hugging Face stack.

Importing the package registers the configs and models with `AutoConfig` / `AutoModel`.
"""

from transformers import AutoConfig, AutoModel

from .configuration_latent_ebm import LatentEBMConfig
from .configuration_latent_ebm_text import LatentEBMTextConfig
from .langevin import LangevinDivergenceError, LangevinOutput, LangevinSampler
from .learning import mle_losses
from .modeling_latent_ebm import LatentEBMForImageGeneration, LatentEBMOutput, LatentEBMPreTrainedModel
from .modeling_latent_ebm_text import LatentEBMForTextGeneration
from .pipelines import LatentEBMPipeline, LatentEBMPipelineOutput

AutoConfig.register(LatentEBMConfig.model_type, LatentEBMConfig, exist_ok=True)
AutoModel.register(LatentEBMConfig, LatentEBMForImageGeneration, exist_ok=True)
AutoConfig.register(LatentEBMTextConfig.model_type, LatentEBMTextConfig, exist_ok=True)
AutoModel.register(LatentEBMTextConfig, LatentEBMForTextGeneration, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "LatentEBMConfig",
    "LatentEBMForImageGeneration",
    "LatentEBMTextConfig",
    "LatentEBMForTextGeneration",
    "LatentEBMOutput",
    "LatentEBMPreTrainedModel",
    "LatentEBMPipeline",
    "LatentEBMPipelineOutput",
    "LangevinSampler",
    "LangevinOutput",
    "LangevinDivergenceError",
    "mle_losses",
]
