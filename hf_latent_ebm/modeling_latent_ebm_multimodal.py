"""The multimodal latent-EBM model (Yuan, Cui, Li & Han, ECCV 2024; Yuan, Lipizzi & Han 2024): one latent shared by
several modalities, an energy-based prior over it, one decoder and one encoder per modality."""

from functools import partial
from pathlib import Path

import numpy as np
import torch

from .configuration_latent_ebm_multimodal import LatentEBMMultimodalConfig
from .decoders.base import decoder_negative_log_likelihood
from .decoders.multimodal import MODALITY_MASK
from .model_kinds import register_model_kind
from .modeling_latent_ebm import LatentEBMOutput, LatentEBMPreTrainedModel
from .modalities import Modality, modality
from .tokenization import TokenizerMixin


class LatentEBMForMultimodalGeneration(TokenizerMixin, LatentEBMPreTrainedModel):
    r"""
    Several modalities x_1..x_M generated from one latent z: p(z) the energy-based prior (or the Gaussian baseline),
    p(x_m | z) one registered decoder per modality (the image model's generator, the text model's recurrent
    decoder), q(z | x_S) the experts of the modalities an example has, combined as the config's `aggregation` says.
    Examples may miss modalities: they learn from the ones they have.

    - `model(**batch)` runs one learner update on a batch of `prepare_inputs` / `prepare_dataset` form (a tensor per
      modality and `modality_mask`);
    - `generate(num_samples=N)` draws z from the prior and decodes every modality (joint generation);
    - `generate(conditioned_on={"m0": x0, "m2": x2}, targets=["m3"])` draws z from the model's posterior given any
      subset of modalities (Langevin from q's draws; `config.cross_modal_sampling`) and decodes the targets
      (cross-modal); repeat a condition to get several different draws for it.

    Raw values: an image is a uint8 array of shape (C, H, W) or (H, W[, C]), or a PIL image; a batch of them a uint8
    array or tensor (N, C, H, W) or a list; a text is a string (a text modality needs the tokenizer, which travels
    with the model as for the text model). `generate` returns uint8 image tensors and lists of strings.

    With the HF `Trainer`, pass `remove_unused_columns=False`: `forward` takes the modalities by name.

    Args:
        config (`LatentEBMMultimodalConfig`): Model configuration.
    """

    config: LatentEBMMultimodalConfig
    config_class = LatentEBMMultimodalConfig
    main_input_name = MODALITY_MASK
    input_modalities = ("image", "text")
    sample_file_suffix = ".png"
    card_num_samples = 8

    def __init__(self, config: LatentEBMMultimodalConfig):
        super().__init__(config)
        self.tokenizer = None

    @property
    def modality_names(self) -> tuple[str, ...]:
        return self.config.modality_names

    def modality_of(self, name: str) -> Modality:
        """The handler of modality `name`'s kind (`hf_latent_ebm.modalities`)."""
        return modality(self.config.kinds[name])

    @property
    def tokenized_names(self) -> list[str]:
        """The modalities whose values the tokenizer encodes (text)."""
        return [name for name in self.modality_names if self.modality_of(name).uses_tokenizer]

    def _tokenizer_for(self, name: str):
        return self._require_tokenizer() if self.modality_of(name).uses_tokenizer else None

    def expected_tokenizer_ids(self) -> dict:
        names = self.tokenized_names
        if not names:
            raise ValueError("this model has no text modality, so it takes no tokenizer")
        return self.modality_of(names[0]).tokenizer_ids(self.config.modalities[names[0]])

    def write_card_samples(self, save_directory) -> Path | None:
        if self.tokenizer is None and self.tokenized_names:  # without the tokenizer there are no captions to show
            return None
        return super().write_card_samples(save_directory)

    def forward(self, generator: torch.Generator | None = None, return_dict: bool | None = None,
                **batch) -> LatentEBMOutput | tuple:
        r"""
        Args:
            generator (`torch.Generator`, *optional*): Source of the chains' and q's randomness.
            return_dict (`bool`, *optional*): Return a `LatentEBMOutput` (default) or a tuple.
            **batch: A tensor per modality (uint8 or [-1, 1] images (batch, C, H, W); token ids (batch, length))
                and `modality_mask`, (batch, M) bool, which modalities each example has.
        """
        return super().forward(generator, return_dict, **batch)

    # ---- raw values in ---------------------------------------------------------------------------------------
    def _check_names(self, names, what: str) -> None:
        unknown = [name for name in names if name not in self.modality_names]
        if unknown:
            raise ValueError(f"{what} names unknown modality {', '.join(map(repr, unknown))}: this model has "
                             f"{', '.join(self.modality_names)}")

    def encode_modality(self, name: str, values) -> tuple[np.ndarray, np.ndarray]:
        """One modality's raw values (None where missing) as the array the model stores (uint8 images, padded
        token ids) and which examples have it."""
        self._check_names([name], "encode_modality")
        return self.modality_of(name).encode(name, values, self.decoder.decoders[name], self._tokenizer_for(name))

    def _stored(self, name: str, values) -> np.ndarray:
        return self.encode_modality(name, values)[0]

    def prepare_inputs(self, examples: dict) -> dict:
        """
        A batch for `forward`, `posterior_latents` and the other model calls from raw values: `examples` maps some
        of the model's modalities to equally long sequences of raw values (None where an example misses it).
        Every example needs at least one modality.
        """
        if not isinstance(examples, dict) or not examples:
            raise ValueError("examples must be a non-empty dict of modality name -> values")
        self._check_names(examples, "the input")
        lengths = {name: len(values) for name, values in examples.items()}
        if len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise ValueError(f"every modality needs the same, non-zero number of examples, got {lengths}")
        batch, mask = {}, torch.zeros(next(iter(lengths.values())), len(self.modality_names), dtype=torch.bool)
        for name, values in examples.items():
            array, present = self.encode_modality(name, values)
            batch[name] = torch.from_numpy(array).to(self.device)
            mask[:, self.modality_names.index(name)] = torch.from_numpy(present)
        batch[MODALITY_MASK] = mask.to(self.device)
        self.check_inputs(batch)
        return batch

    def prepare_dataset(self, dataset, batch_size: int = 1000):
        """
        A multimodal `datasets.Dataset` (a column per modality, see `hf_latent_ebm.data.multimodal`) in the form
        the trainer reads: every modality of the model as a column (uint8 images, token ids padded to max_length;
        placeholders where missing), `modality_mask`, and `label` if the data has one. Columns of modalities the
        model does not have, or of another kind, are an error; modalities the data lacks are missing throughout.
        """
        import datasets

        from .data.multimodal import check_multimodal_dataset

        kinds = check_multimodal_dataset(dataset)
        self._check_names(kinds, "the dataset")
        if dataset._indices is not None:  # a shuffled or selected view: the masks below read the arrow table itself
            dataset = dataset.flatten_indices()
        wrong = {name: kind for name, kind in kinds.items() if kind != self.config.kinds[name]}
        if wrong:
            raise ValueError(f"the dataset's modalities {wrong} are not of the model's kinds "
                             f"{ {name: self.config.kinds[name] for name in wrong} }")
        names = self.modality_names
        mask = np.zeros((len(dataset), len(names)), bool)
        for index, name in enumerate(names):
            if name in kinds:
                mask[:, index] = ~np.asarray(dataset.data.column(name).is_null())
        features = {name: self.modality_of(name).stored_feature(self.decoder.decoders[name]) for name in names}
        # Columns already stored as the model stores them (the bundled uint8 arrays, none missing) are kept as
        # they are; the others are encoded batch by batch.
        keep = [name for name in names if name in kinds and dataset.features[name] == features[name]
                and mask[:, names.index(name)].all()]
        convert = [name for name in names if name not in keep]

        def encode(batch):
            size = len(next(iter(batch.values()))) if batch else 0
            return {name: self.encode_modality(name, batch[name] if name in batch else [None] * size)[0]
                    for name in convert}

        label = ["label"] if "label" in dataset.column_names else []
        prepared = dataset.select_columns(keep + [name for name in convert if name in kinds] + label)
        if convert:
            new_features = datasets.Features({**{name: prepared.features[name] for name in keep + label},
                                              **{name: features[name] for name in convert}})
            prepared = prepared.map(encode, batched=True, batch_size=batch_size,
                                    remove_columns=[name for name in convert if name in kinds],
                                    features=new_features, desc="encoding modalities")
        prepared = prepared.add_column(MODALITY_MASK, mask.tolist(),
                                       feature=datasets.List(datasets.Value("bool"), length=len(names)))
        return prepared.select_columns(list(names) + [MODALITY_MASK] + label)

    # ---- generation ------------------------------------------------------------------------------------------
    def to_raw(self, name: str, values: torch.Tensor):
        """A decoded modality as raw values: uint8 images (N, C, H, W), or a list of strings."""
        return self.modality_of(name).to_raw(values, self._tokenizer_for(name))

    def conditional_latents(self, batch: dict, generator: torch.Generator | None = None,
                            num_steps: int | None = None, step_size: float | None = None) -> torch.Tensor:
        """
        z ~ p(z | x_S) for the modalities each example of `batch` has (a `prepare_inputs` batch), as
        `config.cross_modal_sampling` says: "posterior" runs short-run Langevin with full noise on
        U(z) = E(z) + |z|^2 / (2 prior_sigma^2) + sum over the given m of -w_m log p(x_m | z), started from q(z | x_S)'s
        draws (w_m is the modality's `conditioning_weight`: 1 for images, 30 for texts by default; `num_steps` / `step_size` replace the config's
        `cross_modal_langevin_*`); "encoder" returns q's draw.

        Why a chain: the ELBO fits q(z | caption) to the latents that reconstruct, on average, every image paired
        with that caption, so q is narrow and decodes to the class average; the model's own posterior given the
        caption spreads over every latent whose decoding the caption explains (docs/multimodal.md).
        """
        config = self.config
        start = (self.encoder.sample(batch, generator) if self.encoder is not None
                 else self.prior.sample_reference(batch[MODALITY_MASK].shape[0], generator, self.device))
        if config.cross_modal_sampling == "encoder" and self.encoder is not None:
            return start
        sampler = self.posterior_sampler(config.cross_modal_langevin_steps if num_steps is None else num_steps,
                                         config.cross_modal_langevin_step_size if step_size is None else step_size,
                                         langevin_proper=True)
        prior, decoder, weights = self.prior, self.decoder, config.conditioning_weights
        autocast = self.learner_context.settings.decoder_autocast
        return sampler(lambda latents: prior.potential(latents) + decoder_negative_log_likelihood(
            decoder, batch, latents, autocast, modality_weights=weights), start, generator)

    @torch.no_grad()
    def generate(self, num_samples: int | None = None, conditioned_on: dict | None = None,
                 targets: list[str] | None = None, generator: torch.Generator | None = None) -> dict:
        """
        Joint generation (`num_samples` z from the prior, every modality or the `targets` decoded) or cross-modal
        generation (`conditioned_on`: some modalities' raw values, one per example; z inferred from them, the
        `targets`, by default the other modalities, decoded). Returns {modality: uint8 images (N, C, H, W) or a
        list of N strings}.
        """
        if targets is not None:
            if isinstance(targets, str) or not targets:
                raise ValueError(f"targets must be a non-empty list of modality names, got {targets!r}")
            self._check_names(targets, "targets")
        if conditioned_on is None:
            if not isinstance(num_samples, int) or num_samples < 1:
                raise ValueError(f"joint generation needs num_samples, a positive int; got {num_samples!r}")
            latents = self.sample_latents(num_samples, generator)
        else:
            batch = self.prepare_inputs(conditioned_on)
            size = batch[MODALITY_MASK].shape[0]
            if num_samples is not None and num_samples != size:
                raise ValueError(f"cross-modal generation makes one sample per conditioning example ({size}); "
                                 f"num_samples={num_samples} disagrees")
            targets = targets or [name for name in self.modality_names if name not in conditioned_on]
            if not targets:
                raise ValueError("conditioned_on holds every modality: name the targets to generate")
            latents = self.conditional_latents(batch, generator)
        targets = targets or list(self.modality_names)
        return {name: self.to_raw(name, self.decoder.decoders[name].decode(latents, generator)) for name in targets}

    def write_samples(self, path, num_samples: int, generator: torch.Generator | None = None) -> Path:
        """
        A grid of `num_samples` joint samples: a row per sample (the modalities decoded from one z drawn from the
        prior), a column per modality headed by its name; 28-pixel images are shown enlarged 3x. A text modality is
        left out when the model has no tokenizer to decode it.
        """
        from .utils import modality_grid

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.tokenizer is None and self.tokenized_names:
            targets = [name for name in self.modality_names if name not in self.tokenized_names]
        else:
            targets = None
        generated = self.generate(num_samples, targets=targets, generator=generator)
        modality_grid({name: self.modality_of(name).display(values) for name, values in generated.items()}).save(path)
        return path

    def write_cross_modal_grid(self, path, conditioned_on: dict, targets: list[str] | None = None,
                               num_draws: int = 4, generator: torch.Generator | None = None) -> Path:
        """
        A grid of cross-modal generation, a row per conditioning example of `conditioned_on` (raw values, as
        `generate` takes them): its given modalities first ("given: caption"), then for each target (by default the
        other modalities) `num_draws` draws generated from it side by side ("caption -> image (4 draws)"). The
        draws are one `generate` call on the examples each repeated `num_draws` times.
        """
        from .utils import cross_modal_grid

        if not isinstance(num_draws, int) or num_draws < 1:
            raise ValueError(f"num_draws must be a positive int, got {num_draws!r}")
        if not isinstance(conditioned_on, dict) or not conditioned_on:
            raise ValueError("conditioned_on must be a non-empty dict of modality name -> values")
        lengths = {name: len(values) for name, values in conditioned_on.items()}
        if len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise ValueError(f"every modality needs the same, non-zero number of examples, got {lengths}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        count = len(next(iter(conditioned_on.values())))
        repeated = [index for index in range(count) for _ in range(num_draws)]
        generated = self.generate(conditioned_on={name: [values[index] for index in repeated]
                                                  for name, values in conditioned_on.items()},
                                  targets=targets, generator=generator)
        given = {name: self.modality_of(name).display_given(values, partial(self._stored, name, values))
                 for name, values in conditioned_on.items()}
        generated = {name: self.modality_of(name).display(values) for name, values in generated.items()}
        cross_modal_grid(given, generated, num_draws).save(path)
        return path


register_model_kind(LatentEBMForMultimodalGeneration, "multimodal.md.jinja", pipeline_tag="any-to-any")

__all__ = ["LatentEBMForMultimodalGeneration"]
