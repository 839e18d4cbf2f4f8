"""Configuration of semi-supervised classification by symbol-vector coupling (Pang, Nijkamp, Cui, Han & Wu 2020)."""

from dataclasses import field

from huggingface_hub.dataclasses import strict

from .configuration_latent_ebm import LatentEBMModelConfig, raise_value_errors
from .utils import merge_config_kwargs

# The classification config's default learner settings: the energy-magnitude penalty on.
CLASSIFICATION_LEARNER_CONFIG = {"energy_magnitude_weight": 0.1}


@raise_value_errors
@strict
class LatentEBMClassificationConfig(LatentEBMModelConfig):
    r"""
    Configuration of [`LatentEBMForSemiSupervisedClassification`]: a coupling prior p(y, z) = exp(f_y(z)) p0(z) / Z
    over `num_labels` classes (the labels' names in `id2label`), any registered decoder and encoder built from
    `decoder_config` / `encoder_config` as in [`LatentEBMModelConfig`], and a semi-supervised learner:
    "coupling_vae" (the paper's variational scheme) or "coupling_mle" (posterior Langevin). The presets
    `for_images`, `for_table` and `for_text` fill the parts for each kind of data.

    Args:
        learner_config (`dict`, *optional*, defaults to `{"energy_magnitude_weight": 0.1}`):
            The learner's settings (`CouplingVariationalConfig` / `CouplingMLEConfig`): besides the base config's,
            `label_loss_weight` (100.0: weight of the labelled rows' cross-entropy, the paper's lambda_lab; the
            ELBO's terms are sums over a whole image or row, so the label term needs a comparable scale) and
            `mutual_information_weight` (10.0: weight of the mutual information between y and z of the variational
            learner, lambda_MI of `ibebm`); a given dict is merged over the default field by field. Its
            `energy_magnitude_weight` 0.1 turns the base config's energy-magnitude penalty on here: the class logits are the energy, and the
            labels' cross-entropy and the MI term reward a larger logit scale without end, which steepens the
            energy until the prior chain overshoots it and the energy loss runs off (docs/semi_supervised.md).
        preprocessing (`dict`, *optional*):
            How raw rows become the decoder's input, saved with the model: a `TabularPreprocessor.to_dict()` for
            tables, so a reloaded model takes raw rows; None for tensors.
        class_priors (`list[float]`, *optional*):
            The population's class frequencies, estimated from unlabelled rows by EM
            (`model.fit_class_priors`); `predict_proba` re-weights p(y | x) from `training_class_priors` to them.
            None: predictions use the classifier as trained.
        training_class_priors (`list[float]`, *optional*):
            The class frequencies the classifier learned under (its labelled rows'); set with `class_priors`.
    """

    model_type = "latent_ebm_classification"

    prior_type: str = "coupling"
    learner: str = "coupling_vae"
    learner_config: dict = field(default_factory=lambda: dict(CLASSIFICATION_LEARNER_CONFIG))
    preprocessing: dict | None = None
    class_priors: list[float] | None = None
    training_class_priors: list[float] | None = None

    def validate_classification(self):
        from .class_priors import check_priors

        if (self.class_priors is None) != (self.training_class_priors is None):
            raise ValueError("class_priors and training_class_priors are set together (fit_class_priors sets both)")
        if self.class_priors is not None:
            check_priors(self.class_priors, self.num_labels, "class_priors")
            check_priors(self.training_class_priors, self.num_labels, "training_class_priors")

    @classmethod
    def for_images(cls, num_labels: int = 10, image_size: int = 28, num_channels: int = 1, base_channels: int = 16,
                   sigma: float = 0.3, **overrides) -> "LatentEBMClassificationConfig":
        """The DCGAN generator of the image model and its mirrored conv encoder."""
        image = dict(image_size=image_size, num_channels=num_channels, base_channels=base_channels)
        settings = dict(decoder_type="conv", decoder_config={**image, "sigma": sigma}, encoder_type="conv",
                        encoder_config=image, num_labels=num_labels)
        return cls(**merge_config_kwargs(settings, overrides))

    @classmethod
    def for_table(cls, preprocessor, hidden_dim: int = 128, sigma: float = 0.5,
                  **overrides) -> "LatentEBMClassificationConfig":
        """The tabular decoder and encoder for the columns a fitted `TabularPreprocessor` describes, its label
        vocabulary as `id2label`, and the preprocessing saved in the config."""
        columns = dict(num_numeric=len(preprocessor.numeric_columns), category_sizes=preprocessor.category_sizes,
                       hidden_dim=hidden_dim)
        settings = dict(decoder_type="tabular", decoder_config={**columns, "sigma": sigma}, encoder_type="tabular",
                        encoder_config=columns, id2label=dict(enumerate(preprocessor.label_names)),
                        preprocessing=preprocessor.to_dict(), latent_dim=8, prior_config={"hidden_dim": 64})
        return cls(**merge_config_kwargs(settings, overrides))

    @classmethod
    def for_text(cls, vocab_size: int, num_labels: int = 2, pad_token_id: int = 0, bos_token_id: int = 1,
                 eos_token_id: int = 2, max_length: int = 40, embedding_dim: int = 128, hidden_dim: int = 128,
                 **overrides) -> "LatentEBMClassificationConfig":
        """An LSTM decoder over token ids (z sets its state and joins every input) and an LSTM encoder."""
        special = dict(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id)
        decoder = dict(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=1,
                       dropout=0.0, max_length=max_length, **special)
        encoder = dict(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                       pad_token_id=pad_token_id)
        settings = dict(decoder_type="lstm", decoder_config=decoder, encoder_type="lstm", encoder_config=encoder,
                        num_labels=num_labels, latent_dim=32)
        return cls(**merge_config_kwargs(settings, overrides))


__all__ = ["LatentEBMClassificationConfig"]
