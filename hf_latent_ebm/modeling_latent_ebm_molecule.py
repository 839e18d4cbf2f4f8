"""Latent-EBM molecule model: the text model over SMILES (or SELFIES) tokens (Pang, Han & Wu 2020), with an optional
property head p(y | z) that molecule design shifts (Kong, Pang, Han & Wu, UAI 2023)."""

import torch

from .configuration_latent_ebm_molecule import LatentEBMMoleculeConfig
from .decoders.properties import PROPERTIES, PropertyHeadDecoder
from .model_kinds import register_model_kind
from .modeling_latent_ebm_text import LatentEBMForTextGeneration
from .tokenization import unknown_words


class LatentEBMForMoleculeGeneration(LatentEBMForTextGeneration):
    r"""
    Molecules from a latent EBM prior: z by prior Langevin, then an autoregressive decoder writes a SMILES (or SELFIES)
    string token by token. With `config.property_names` a regression head p(y | z) over those RDKit properties is
    trained jointly: -log p(x, y | z) is the decoder's term plus the head's, so posterior inference of z sees the
    property, and design (`hf_latent_ebm.molecule_design.design_molecules`) draws z from p(z) p(y* | z) for a target
    y*. Molecules go in and come out as SMILES whatever the representation.

    Args:
        config (`LatentEBMMoleculeConfig`): Model configuration.
    """

    config: LatentEBMMoleculeConfig
    config_class = LatentEBMMoleculeConfig
    sample_file_suffix = ".smi"
    card_num_samples = 16

    def extend_decoder(self, decoder):
        config = self.config
        if not config.property_names:
            return decoder
        return PropertyHeadDecoder(decoder, config.latent_dim, len(config.property_names),
                                   hidden_dim=config.property_hidden_dim, sigma=config.property_sigma)

    @property
    def property_head(self) -> PropertyHeadDecoder:
        if not isinstance(self.decoder, PropertyHeadDecoder):
            raise ValueError("this model has no property head: train one with property_names (e.g. "
                             "`hf-latent-ebm train --task smiles --properties qed`)")
        return self.decoder

    # ---- strings and batches -----------------------------------------------------------------------------------
    def to_model_strings(self, smiles: list[str]) -> list[str]:
        """SMILES as the strings the decoder writes (SELFIES for representation "selfies")."""
        if isinstance(smiles, str) or not all(isinstance(text, str) for text in smiles):
            raise ValueError("smiles must be a list of strings")
        if self.config.representation == "selfies":
            from .data.molecules import to_selfies

            return to_selfies(list(smiles))
        return list(smiles)

    def to_smiles(self, strings: list[str]) -> list[str]:
        """Decoded strings as SMILES ("" where a SELFIES string decodes to nothing)."""
        if self.config.representation == "selfies":
            from .data.molecules import from_selfies

            return [text or "" for text in from_selfies(strings)]
        return strings

    def tokenize_molecules(self, smiles: list[str]) -> torch.Tensor:
        """Token ids of molecules given as SMILES. A token the tokenizer does not know (an atom no training
        molecule had) is an error naming it: encoded as <unk> it would be another molecule."""
        strings = self.to_model_strings(smiles)
        unknown = unknown_words(self._require_tokenizer(), [text for text in strings if text.strip()])
        if unknown:
            raise ValueError(f"{len(unknown)} token(s) are not in the model's vocabulary (no training molecule had "
                             f"them): {', '.join(map(repr, unknown[:10]))}")
        return self.tokenize(strings)

    def encodable(self, smiles: list[str]) -> list[bool]:
        """Whether the model can encode each molecule as it is: every token in its vocabulary and no more than
        `config.max_length` tokens (design keeps only these, since its refit trains on them)."""
        tokenizer = self._require_tokenizer()
        strings = self.to_model_strings(smiles)
        return [tokenizer.unk_token_id not in ids and len(ids) <= self.config.max_length
                for ids in tokenizer(strings)["input_ids"]]

    def _property_scaling(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The saved (means, stds) of the head's properties, as CPU tensors."""
        return torch.tensor(self.config.property_means), torch.tensor(self.config.property_stds)

    def standardize_properties(self, properties: dict) -> torch.Tensor:
        """Raw property values (name -> one value per molecule, NaN for unknown) as the head's standardised
        (N, num_properties) tensor, with the means and stds saved in the config."""
        names = self.config.property_names
        missing = [name for name in names if name not in properties]
        if missing:
            raise ValueError(f"properties lack {', '.join(missing)} (the model predicts {', '.join(names)})")
        values = torch.stack([torch.as_tensor(properties[name], dtype=torch.float32) for name in names], dim=1)
        means, stds = self._property_scaling()
        return ((values - means) / stds).to(self.device)

    def unstandardize_properties(self, values: torch.Tensor) -> dict[str, list[float]]:
        """The head's standardised (N, num_properties) values in the properties' own units, by name."""
        means, stds = self._property_scaling()
        raw = values.detach().float().cpu() * stds + means
        return {name: raw[:, index].tolist() for index, name in enumerate(self.config.property_names)}

    def molecule_batch(self, smiles: list[str], properties: dict | None = None) -> dict:
        """A training batch: `input_ids`, and with a property head `properties` (standardised) from the raw values
        given (name -> list; NaN marks an unknown value)."""
        batch = {"input_ids": self.tokenize_molecules(smiles)}
        if self.config.property_names:
            if properties is None:
                raise ValueError(f"this model has a property head: give properties {self.config.property_names}")
            batch[PROPERTIES] = self.standardize_properties(properties)
        return batch

    def prepare_dataset(self, dataset):
        """A `datasets.Dataset` of molecules (a "smiles" column and, for a property head, a column per property, as
        `hf_latent_ebm.data.load_moses` makes) as the training columns `input_ids` (and `properties`), in its order."""
        import datasets

        if "smiles" not in dataset.column_names:
            raise ValueError(f"the dataset needs a 'smiles' column (it has {', '.join(dataset.column_names)})")
        names = self.config.property_names
        batch = self.molecule_batch(list(dataset["smiles"]), {name: dataset[name] for name in names
                                                               if name in dataset.column_names} if names else None)
        return datasets.Dataset.from_dict({name: values.cpu().numpy() for name, values in batch.items()})

    # ---- generation and prediction -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_smiles(self, num_samples: int, generator: torch.Generator | None = None,
                        temperature: float = 1.0) -> list[str]:
        """`num_samples` molecules as SMILES from z ~ p(z) (prior Langevin), invalid ones included as written:
        validity is for metrics to measure, not for the sampler to hide."""
        return self.to_smiles(self.generate_text(num_samples, generator, temperature))

    @torch.no_grad()
    def decode_molecules(self, latents: torch.Tensor, generator: torch.Generator | None = None,
                         temperature: float = 1.0) -> list[str]:
        """SMILES decoded from given latents."""
        return self.to_smiles(self.decode_latents(latents, temperature=temperature, generator=generator))

    def sample_lines(self, num_samples: int, generator: torch.Generator | None = None) -> list[str]:
        """What `write_samples` writes (a .smi file, or stdout for "-"): generated SMILES, one per line."""
        return self.generate_smiles(num_samples, generator)

    @torch.no_grad()
    def predict_properties(self, smiles: list[str], generator: torch.Generator | None = None) -> dict[str, list]:
        """The head's property predictions (own units) at posterior latents of the molecules (inferred from the
        strings alone)."""
        head = self.property_head
        latents = self.posterior_latents(self.tokenize_molecules(smiles), generator)
        return self.unstandardize_properties(head.predict(latents))

    def property_potential(self, targets: torch.Tensor):
        """U(z) = E(z) + |z|^2 / (2 s^2) - log p(y* | z): the potential of p(z) p(y* | z) for standardised targets
        y* (N, num_properties; NaN leaves a property free), the design chain's."""
        head = self.property_head
        return lambda latents: self.prior.potential(latents) + head.property_negative_log_likelihood(targets, latents)

    @torch.no_grad()
    def latents_for_properties(self, targets: torch.Tensor, start: torch.Tensor, num_steps: int | None = None,
                               step_size: float | None = None,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents from p(z) p(y* | z) by Langevin from `start` (the previous round's latents in design: the chain
        is persistent), with the prior chain's settings unless given."""
        sampler = self.prior_sampler(num_steps, step_size)
        with torch.enable_grad():
            return sampler(self.property_potential(targets.to(self.device)), start.to(self.device), generator)


register_model_kind(LatentEBMForMoleculeGeneration, "molecule.md.jinja", pipeline_tag="text-generation",
                    tags=("latent-ebm", "energy-based-model", "langevin", "hf-latent-ebm", "chemistry", "molecules",
                          "smiles"))

__all__ = ["LatentEBMForMoleculeGeneration"]
