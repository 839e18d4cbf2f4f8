"""The base classes of a modality kind: `Modality`, everything the library does differently for one kind of value
(images, texts, ...), and `ModalityClassifier`, the classifier that coherence scores that kind with."""

import torch
from torch import nn


class Modality:
    r"""
    One kind of modality of the multimodal model (`spec["kind"]` of `LatentEBMMultimodalConfig.modalities`), and of
    the multimodal data format: each place that treats image and text values differently asks the kind's handler.
    A new kind is a subclass plus `register_modality(name, cls)`. The hooks, by the layer that calls them:

    - data (`hf_latent_ebm.data.multimodal`): `matches_feature` (which `datasets` features are columns of this kind),
      and for a folder of files `folder_value_description`, `folder_feature`, `folder_cell`, `missing`, `check_cell`;
    - parts: `to_scored_values`, stored values as what the kind's decoder and encoder score;
    - model (`LatentEBMForMultimodalGeneration`): `encode` (raw values -> the stored array), `stored_feature`,
      `to_raw` (decoded values -> raw values), `uses_tokenizer` and `tokenizer_ids`, and for the sample grids
      `display` / `display_given` (uint8 images or strings, what `hf_latent_ebm.utils.modality_grid` draws);
    - CLI (`hf-latent-ebm train --task multimodal`): `specs_from_data` and `max_length`;
    - metrics (`hf_latent_ebm.metrics.coherence`): `count`, `build_classifier`, `classifier_class`,
      `classifier_epochs`, `classifier_learning_rate`, `measures_diversity`.

    Hooks a kind does not support raise `NotImplementedError` naming the kind.
    """

    name: str = ""
    # Its values are token ids that the model's one tokenizer encodes and decodes.
    uses_tokenizer: bool = False
    # Its values are uint8 image tensors, which `cross_modal_diversity` compares pixel by pixel.
    measures_diversity: bool = False
    # What a folder index (`load_multimodal_folder`) holds for it ("an image file path"); None: not read from folders.
    folder_value_description: str | None = None
    # The `datasets` features of its columns, for error messages.
    feature_description: str = ""
    classifier_class: type["ModalityClassifier"] | None = None
    classifier_epochs: int = 10
    classifier_learning_rate: float = 1e-2

    def _unsupported(self, what: str):
        return NotImplementedError(f"modality kind {self.name!r} does not support {what}")

    # ---- data ---------------------------------------------------------------------------------------------------
    def matches_feature(self, name: str, feature) -> bool:
        """Whether column `name` with `datasets` feature `feature` is of this kind (raise a ValueError for a column
        that is of this kind but malformed)."""
        return False

    def folder_feature(self):
        """The `datasets` feature of its column in a dataset read from a folder."""
        raise self._unsupported("folders of files")

    def folder_cell(self, folder, value: str):
        """The cell of a folder example's value (a string from the index): an absolute file path, the text itself."""
        return value

    def missing(self, cell) -> bool:
        """Whether a folder cell names a file that does not exist (all such are reported together)."""
        return False

    def check_cell(self, cell) -> None:
        """Raise a ValueError if a folder cell cannot be read (run on every cell before the dataset is made)."""

    # ---- parts --------------------------------------------------------------------------------------------------
    def to_scored_values(self, values: torch.Tensor) -> torch.Tensor:
        """A batch as stored (uint8 images, token ids, ...) as what the kind's decoder and encoder score."""
        return values

    # ---- model --------------------------------------------------------------------------------------------------
    def encode(self, name: str, values, decoder, tokenizer=None):
        """Raw values of modality `name` (None where an example misses it) as (the stored array, a bool array of
        which examples have it); `decoder` is the modality's decoder, `tokenizer` the model's where
        `uses_tokenizer`."""
        raise self._unsupported("encoding raw values")

    def stored_feature(self, decoder):
        """The `datasets` feature of the stored column (`prepare_dataset`)."""
        raise self._unsupported("stored dataset columns")

    def to_raw(self, values: torch.Tensor, tokenizer=None):
        """Decoded values (what the modality's decoder's `decode` returns) as raw values."""
        return values

    def tokenizer_ids(self, spec: dict) -> dict:
        """{"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"} a tokenizer needs for this spec."""
        raise self._unsupported("tokenizers")

    def display(self, values):
        """Raw values (as `generate` returns or takes them) as the sample grids draw them: a uint8 image tensor
        (N, C, H, W) or a list of N strings."""
        return values

    def display_given(self, values, encode):
        """Given raw values (as `generate` takes them) as the grids draw them; `encode()` returns their stored
        array."""
        return self.display(list(values))

    # ---- CLI ----------------------------------------------------------------------------------------------------
    def specs_from_data(self, dataset, names: list[str], options) -> tuple[dict, object]:
        """The specs of the columns `names` of this kind (`LatentEBMMultimodalConfig.modalities` entries), made
        from the training data and the `hf-latent-ebm train` arguments `options`, and the tokenizer they need (or
        None)."""
        raise self._unsupported("hf-latent-ebm train --task multimodal")

    def max_length(self, spec: dict) -> int | None:
        """The longest value a spec allows, in tokens (`--max-length`); None where the kind has no such limit."""
        return None

    # ---- metrics ------------------------------------------------------------------------------------------------
    def count(self, values) -> int:
        """The number of values in a batch of raw values, or a ValueError saying what the kind takes."""
        raise self._unsupported("coherence scores")

    def build_classifier(self, values, num_labels: int) -> "ModalityClassifier":
        """A fresh (untrained) coherence classifier for these training values."""
        raise self._unsupported("coherence classifiers")


class ModalityClassifier(nn.Module):
    """A classifier of one modality kind's values into `num_labels` classes; subclasses set `kind`."""

    kind: str = ""

    def __init__(self, num_labels: int):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.num_labels = num_labels

    def check_values(self, values) -> None:
        """Raise a ValueError unless `values` is a batch this classifier accepts."""
        raise NotImplementedError

    def prepare(self, values):
        """Checked values -> what `logits` takes (a float tensor, ids and offsets, ...), on the module's device."""
        raise NotImplementedError

    def logits(self, inputs) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, values) -> torch.Tensor:
        self.check_values(values)
        return self.logits(self.prepare(values))

    def batch_source(self, values):
        """For training: a function of example indices (a LongTensor) returning `logits`' inputs for them."""
        return lambda indices: self.prepare(values[indices])

    def config_dict(self) -> dict:
        """Everything besides the weights needed to rebuild the module, JSON-serialisable."""
        raise NotImplementedError

    @classmethod
    def from_config_dict(cls, config: dict) -> "ModalityClassifier":
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, values, batch_size: int = 256) -> torch.LongTensor:
        """Predicted labels, a (N,) LongTensor on the CPU."""
        self.check_values(values)
        self.eval()
        predictions = [self.logits(self.prepare(values[start:start + batch_size])).argmax(-1).cpu()
                       for start in range(0, len(values), batch_size)]
        return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


__all__ = ["Modality", "ModalityClassifier"]
