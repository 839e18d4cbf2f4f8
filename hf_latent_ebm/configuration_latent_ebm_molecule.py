"""Configuration of the latent-EBM molecule model: SMILES (or SELFIES) under the text model's prior, sampler and
learner (Pang, Han & Wu 2020), with an optional property head p(y | z) for design (Kong et al. UAI 2023, SGDS)."""

import copy
from dataclasses import field

from huggingface_hub.dataclasses import strict

from .configuration_latent_ebm import raise_value_errors
from .configuration_latent_ebm_text import LatentEBMTextConfig, TEXT_LEARNER_CONFIG, TEXT_SAMPLER_CONFIG

REPRESENTATIONS = ("smiles", "selfies")
# The molecule decoder's defaults: SGDS's decoder has 512-wide embeddings and a 1024-wide LSTM with dropout 0.2; these
# are smaller so that a CPU trains one in minutes (`decoder_config` restores SGDS's sizes).
MOLECULE_DECODER_CONFIG = {"embedding_dim": 128, "hidden_dim": 256, "dropout": 0.2}


@raise_value_errors
@strict
class LatentEBMMoleculeConfig(LatentEBMTextConfig):
    r"""
    Configuration of [`LatentEBMForMoleculeGeneration`]: the text model's latent EBM prior, Langevin chains and
    learner over a molecule string decoder (one token per atom, bond, branch or ring closure), with an optional
    Gaussian regression head p(y | z) over named RDKit properties trained jointly (its term is part of -log p(x, y |
    z), so the posterior chains see it) and used by design (`hf_latent_ebm.molecule_design`).

    Args:
        representation (`str`, *optional*, defaults to `"smiles"`): The strings the decoder writes: "smiles", or
            "selfies" (every SELFIES string decodes to a valid molecule; needs the `selfies` package). Molecules go
            in and come out as SMILES either way.
        property_names (`list[str]`, *optional*, defaults to `[]`): Properties the head predicts, each one of
            `hf_latent_ebm.data.molecules.PROPERTY_NAMES` ("qed", "logp", "sa", "penalized_logp", "mol_weight");
            empty: no head.
        property_means (`list[float]`), property_stds (`list[float]`): The training set's mean and std of each
            property: the head works on standardised values, and design and prediction convert with these saved
            numbers (set from the data when training).
        property_sigma (`float`, *optional*, defaults to 0.2236): Std of p(y | z) on standardised properties (SGDS's
            MSE weight of 10).
        property_hidden_dim (`int`, *optional*, defaults to 200): Width of the head's hidden layer (SGDS's).
        max_length (`int`, *optional*, defaults to 80): Longest molecule in tokens, <bos> and <eos> included (MOSES's
            longest SMILES has 57 characters).
        latent_dim (`int`, *optional*, defaults to 100): Dimension of z (SGDS's).

    Everything else is [`LatentEBMTextConfig`]'s, with a smaller LSTM than SGDS's by default
    (`MOLECULE_DECODER_CONFIG`). `prior_type="gaussian"` gives the Gaussian-prior baseline of the same network.
    """

    model_type = "latent_ebm_molecule"

    representation: str = "smiles"
    property_names: list[str] = field(default_factory=list)
    property_means: list[float] = field(default_factory=list)
    property_stds: list[float] = field(default_factory=list)
    property_sigma: float = 0.2236
    property_hidden_dim: int = 200
    max_length: int = 80
    latent_dim: int = 100
    decoder_config: dict = field(default_factory=lambda: dict(MOLECULE_DECODER_CONFIG))
    sampler_config: dict = field(default_factory=lambda: copy.deepcopy(TEXT_SAMPLER_CONFIG))
    learner_config: dict = field(default_factory=lambda: copy.deepcopy(TEXT_LEARNER_CONFIG))

    def validate_molecule(self):
        from .data.molecules import PROPERTY_NAMES

        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        unknown = [name for name in self.property_names if name not in PROPERTY_NAMES]
        if unknown:
            raise ValueError(f"unknown property {', '.join(map(repr, unknown))}; known: {', '.join(PROPERTY_NAMES)}")
        if len(set(self.property_names)) != len(self.property_names):
            raise ValueError(f"property_names has repeats: {self.property_names}")
        count = len(self.property_names)
        if len(self.property_means) != count or len(self.property_stds) != count:
            raise ValueError(f"property_means and property_stds need one value per property ({count}), got "
                             f"{len(self.property_means)} and {len(self.property_stds)}")
        if not all(std > 0 for std in self.property_stds):
            raise ValueError(f"property_stds must be > 0, got {self.property_stds}")
        if not self.property_sigma > 0 or self.property_hidden_dim < 1:
            raise ValueError(f"property_sigma must be > 0 and property_hidden_dim >= 1, got {self.property_sigma} "
                             f"and {self.property_hidden_dim}")


__all__ = ["LatentEBMMoleculeConfig", "REPRESENTATIONS", "MOLECULE_DECODER_CONFIG"]
