"""Semi-supervised classification by symbol-vector coupling: a latent EBM whose prior couples z with a label."""

from pathlib import Path

import torch
import torch.nn.functional as F

from .configuration_latent_ebm_classification import LatentEBMClassificationConfig
from .model_kinds import register_model_kind
from .modeling_latent_ebm import LatentEBMOutput, LatentEBMPreTrainedModel


class LatentEBMForSemiSupervisedClassification(LatentEBMPreTrainedModel):
    r"""
    A generator p(x | z) with the coupling prior p(y, z) = exp(f_y(z)) p0(z) / Z (Pang, Nijkamp, Cui, Han & Wu 2020):
    unlabelled examples learn through the marginal p(z), labelled ones also through p(y | z) = softmax f(z), and the
    same f classifies. Works with any decoder (images, tables, token ids; see the config's presets).

    `model(features=x, labels=y)` (or `pixel_values=`, `input_ids=`: the decoder's input name) takes batches whose
    unlabelled rows have label -100 and returns `loss` and `logits`; `predict(x)` / `predict_proba(x)` classify
    tensors or, for a model with tabular preprocessing, raw rows (a DataFrame, a `datasets.Dataset` or a list of
    dicts); `sample(n, labels=...)` draws class-conditional samples. With the HF `Trainer`, pass
    `remove_unused_columns=False`.

    Args:
        config (`LatentEBMClassificationConfig`): Model configuration.
    """

    config: LatentEBMClassificationConfig
    config_class = LatentEBMClassificationConfig
    main_input_name = "features"
    card_num_samples = 40

    def forward(self, generator: torch.Generator | None = None, return_dict: bool | None = None,
                labels: torch.Tensor | None = None, **batch) -> LatentEBMOutput | tuple:
        r"""
        Args:
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*): Class ids, -100 for unlabelled rows.
            **batch: The observations under the decoder's input name.
        """
        if labels is not None and (labels.dim() != 1 or labels.dtype != torch.long):
            raise ValueError(f"labels must be a 1-d torch.long tensor of class ids (-100 for unlabelled), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        return super().forward(generator, return_dict, labels=labels, **batch)

    # ---- inputs ----------------------------------------------------------------------------------------------
    @property
    def preprocessor(self):
        """The `TabularPreprocessor` saved in the config, or None."""
        if self.config.preprocessing is None:
            return None
        from .data.tabular import TabularPreprocessor

        return TabularPreprocessor.from_dict(self.config.preprocessing)

    def prepare_inputs(self, rows) -> torch.Tensor:
        """The decoder's input tensor: tensors pass through; raw table rows go through the saved preprocessing."""
        if isinstance(rows, torch.Tensor):
            return rows.to(self.device)
        if self.preprocessor is None:
            raise ValueError("this model takes tensors (it has no tabular preprocessing)")
        return self.preprocessor.transform(rows, with_labels=False)[0].to(self.device)

    # ---- classification --------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, rows, generator: torch.Generator | None = None,
                      use_class_priors: bool = True) -> torch.Tensor:
        """p(y | x), shape (N, num_labels): softmax f at the encoder mean (variational learner) or at a posterior
        chain's end (Langevin learner), re-weighted to the population's class priors when the model has them
        (`fit_class_priors`) and `use_class_priors` is True."""
        observations = self.prepare_inputs(rows)
        self.check_inputs(observations)
        probabilities = F.softmax(self.learner.class_logits(self.learner_context, observations, generator), dim=1)
        if use_class_priors and self.config.class_priors is not None:
            from .class_priors import shift_to_priors

            probabilities = shift_to_priors(probabilities, self.config.training_class_priors, self.config.class_priors)
        return probabilities

    @torch.no_grad()
    def predict(self, rows, generator: torch.Generator | None = None, use_class_priors: bool = True) -> torch.Tensor:
        """The most likely class id per row (names in `config.id2label`)."""
        return self.predict_proba(rows, generator, use_class_priors).argmax(dim=1)

    @torch.no_grad()
    def fit_class_priors(self, unlabelled_rows, training_class_priors, generator: torch.Generator | None = None,
                         batch_size: int = 1000, min_prior: float = 1e-3) -> list[float]:
        """
        Estimate the population's class priors from unlabelled rows by EM on the model's own p(y | x) (Saerens et
        al. 2002) and keep them in the config (saved with the model), so `predict_proba` re-weights to them: a
        classifier trained on balanced labelled rows otherwise predicts as if every class were equally common.

        Args:
            unlabelled_rows: Rows of the population (tensors or, with tabular preprocessing, raw rows).
            training_class_priors: The labelled rows' class frequencies (or counts), which the classifier learned
                under.
            generator (`torch.Generator`, *optional*): For learners that classify with a chain.
            min_prior (`float`, defaults to 1e-3): EM on posteriors that carry little information (an undertrained
                or miscalibrated classifier) can drive a class's prior to 0, after which that class is never
                predicted; below this the estimate is refused with a ValueError and the config is left unchanged.

        Returns:
            The estimated priors, also in `config.class_priors`.
        """
        from .class_priors import estimate_class_priors

        counts = torch.as_tensor(training_class_priors, dtype=torch.float64)
        if counts.shape != (self.config.num_labels,) or not bool((counts > 0).all()):
            raise ValueError(f"training_class_priors must be {self.config.num_labels} positive frequencies or "
                             f"counts, got {counts.tolist()}")
        observations = self.prepare_inputs(unlabelled_rows)
        probabilities = torch.cat([self.predict_proba(observations[start:start + batch_size], generator,
                                                      use_class_priors=False).cpu()
                                   for start in range(0, len(observations), batch_size)])
        training = (counts / counts.sum()).tolist()
        priors = estimate_class_priors(probabilities, training).tolist()
        rare = {self.config.id2label[i]: round(prior, 6) for i, prior in enumerate(priors) if prior < min_prior}
        if rare:
            raise ValueError(f"EM on the model's predictions drove the prior of {rare} below {min_prior}, so those "
                             "classes would never be predicted; the classifier's probabilities are probably too "
                             "uninformative or miscalibrated to estimate class priors from (train longer, or keep "
                             "the classifier's own priors)")
        self.config.class_priors, self.config.training_class_priors = priors, training
        return priors

    @torch.no_grad()
    def validation_metrics(self, batches, generator: torch.Generator | None = None) -> dict[str, float]:
        """Accuracy and log loss (mean -log p(y | x)) over dict batches of the decoder's input and `labels`: what
        the trainer selects checkpoints by."""
        correct, log_loss, count = 0.0, 0.0, 0
        for batch in batches:
            batch = {name: values.to(self.device) for name, values in batch.items()}
            observations, labels = self.decoder.compact(self.decoder.select(batch)), batch["labels"]
            logits = self.learner.class_logits(self.learner_context, observations, generator)
            correct += float((logits.argmax(dim=1) == labels).sum())
            log_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            count += len(labels)
        return {"accuracy": correct / count, "log_loss": log_loss / count}

    # ---- generation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None, labels=None):
        """batch_size samples from the marginal, or with `labels` (class ids, one per sample) from p(x | y)."""
        if labels is None:
            return super().sample(batch_size, generator)
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        if labels.shape != (batch_size,) or bool(((labels < 0) | (labels >= self.config.num_labels)).any()):
            raise ValueError(f"labels must be {batch_size} class ids in [0, {self.config.num_labels}), got "
                             f"{labels.tolist()}")
        start = self.prior.sample_reference(batch_size, generator, self.device)
        latents = self.prior.sample_from(start, self.prior_sampler(), generator, labels=labels)
        return self.decode(latents, generator)

    @property
    def sample_file_suffix(self) -> str:
        if self.decoder.modality == "image":
            return ".png"
        return ".csv" if self.preprocessor is not None else ".npy"

    def write_samples(self, path, num_samples: int, generator: torch.Generator | None = None) -> Path:
        """Class-conditional samples, the classes in turn: an image grid (a row per class), table rows with their
        label (CSV), or an array."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        num_labels = self.config.num_labels
        if self.decoder.modality == "image":  # whole rows: ceil(num_samples / K) samples of every class
            from .utils import image_grid

            per_class = -(-num_samples // num_labels)
            labels = torch.arange(num_labels).repeat_interleave(per_class)
            image_grid(self.sample(len(labels), generator, labels=labels), num_columns=per_class).save(path)
            return path
        labels = torch.arange(num_samples) % num_labels
        samples = self.sample(num_samples, generator, labels=labels)
        if self.preprocessor is not None:
            frame = self.preprocessor.inverse_transform(samples)
            frame[self.preprocessor.label_column or "label"] = [self.config.id2label[int(i)] for i in labels]
            frame.to_csv(path, index=False)
        else:
            import numpy as np

            np.save(path, samples.cpu().numpy(), allow_pickle=False)
        return path


# A classifier's Hub task follows its decoder.
CLASSIFICATION_TAGS = {"conv": "image-classification", "tabular": "tabular-classification",
                       **dict.fromkeys(("lstm", "gru", "transformer"), "text-classification")}
register_model_kind(LatentEBMForSemiSupervisedClassification, "classification.md.jinja",
                    pipeline_tag=lambda config: CLASSIFICATION_TAGS.get(config.get("decoder_type")))

__all__ = ["LatentEBMForSemiSupervisedClassification"]
