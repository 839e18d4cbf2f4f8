"""The text modality kind: strings, stored as token ids of the model's one tokenizer, the text model's recurrent
decoder and LSTM encoder, a bag-of-words classifier to score coherence with."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..tokenization import warn_unknown_words
from .base import Modality, ModalityClassifier

TEXT_CONDITIONING_WEIGHT = 30.0
# `hf-latent-ebm train --task multimodal`'s default caption length limit is at least this many tokens.
MIN_MAX_LENGTH = 32


def text_modality(tokenizer, max_length: int = 16, embedding_dim: int = 64, hidden_dim: int = 128,
                  cell: str = "gru", conditioning_weight: float = TEXT_CONDITIONING_WEIGHT) -> dict:
    """The spec of a text modality over `tokenizer`'s vocabulary: the text model's recurrent decoder (one layer)
    and its LSTM encoder. `max_length` counts <bos> and <eos>; longer texts are an error, not truncated (the CLI
    sets it with `--max-length`). The tokenizer's unknown token, if it has one, is never generated.
    `conditioning_weight` weighs the text's likelihood when it is given in cross-modal generation: a caption of a
    few tokens separates the classes by a few nats only, so at weight 1 the images drawn for it stray into other
    classes (docs/multimodal.md has the measurements behind the default)."""
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    return {"kind": "text", "decoder_type": cell,
            "decoder_config": dict(vocab_size=len(tokenizer), embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                                   num_layers=1, dropout=0.0, max_length=max_length,
                                   unk_token_id=tokenizer.unk_token_id, **ids),
            "encoder_type": "lstm",
            "encoder_config": dict(vocab_size=len(tokenizer), embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                                   pad_token_id=ids["pad_token_id"]),
            "conditioning_weight": conditioning_weight}


def check_texts(values) -> None:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"texts must be a list of strings, got {type(values).__name__}")
    bad = next((value for value in values if not isinstance(value, str)), None)
    if bad is not None:
        raise ValueError(f"texts must be a list of strings, got an element of type {type(bad).__name__}")


def text_words(text: str) -> list[str]:
    """The tokenisation of `TextClassifier`: lowercased, split on whitespace."""
    return text.lower().split()


class TextClassifier(ModalityClassifier):
    """
    A bag-of-words classifier: the mean of learned word embeddings (EmbeddingBag), then a linear layer. Words outside
    the vocabulary are ignored; a text with no known word gets the bias-only prediction.

    Args:
        vocabulary (`Sequence[str]`): The known words (lowercase, unique); see `build_vocabulary`.
        num_labels (`int`): Number of classes.
        embedding_dim (`int`, defaults to 64): Width of the word embeddings.
    """

    kind = "text"

    def __init__(self, vocabulary: Sequence[str], num_labels: int, embedding_dim: int = 64):
        super().__init__(num_labels)
        vocabulary = list(vocabulary)
        if not vocabulary or len(set(vocabulary)) != len(vocabulary) or embedding_dim < 1:
            raise ValueError(f"vocabulary must be non-empty and unique and embedding_dim >= 1, got {len(vocabulary)} "
                             f"words ({len(set(vocabulary))} unique) and embedding_dim={embedding_dim}")
        self.vocabulary, self.embedding_dim = vocabulary, embedding_dim
        self.word_ids = {word: index for index, word in enumerate(vocabulary)}
        self.embedding = nn.EmbeddingBag(len(vocabulary), embedding_dim, mode="mean")
        self.head = nn.Linear(embedding_dim, num_labels)

    @staticmethod
    def build_vocabulary(texts: Sequence[str], min_count: int = 1) -> list[str]:
        """Words occurring at least `min_count` times in `texts`, in order of first occurrence."""
        counts: dict[str, int] = {}
        for text in texts:
            for word in text_words(text):
                counts[word] = counts.get(word, 0) + 1
        return [word for word, count in counts.items() if count >= min_count]

    def check_values(self, values) -> None:
        check_texts(values)

    def prepare(self, values) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [[self.word_ids[word] for word in text_words(text) if word in self.word_ids] for text in values]
        offsets = torch.tensor([0] + [len(row) for row in ids[:-1]], dtype=torch.long).cumsum(0)
        flat = torch.tensor([index for row in ids for index in row], dtype=torch.long)
        return flat.to(self.device), offsets.to(self.device)

    def logits(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, offsets = inputs
        return self.head(self.embedding(ids, offsets))

    def batch_source(self, values):
        # Text is tokenised once; each batch then only slices the id lists.
        encoded = [self.prepare([text])[0].cpu() for text in values]

        def batch_inputs(indices: torch.Tensor):
            rows = [encoded[index] for index in indices.tolist()]
            offsets = torch.tensor([0] + [len(row) for row in rows[:-1]], dtype=torch.long).cumsum(0)
            return torch.cat(rows).to(self.device), offsets.to(self.device)

        return batch_inputs

    def config_dict(self) -> dict:
        return {"kind": self.kind, "num_labels": self.num_labels, "embedding_dim": self.embedding_dim,
                "vocabulary": self.vocabulary}

    @classmethod
    def from_config_dict(cls, config: dict) -> "TextClassifier":
        return cls(config["vocabulary"], config["num_labels"], config["embedding_dim"])


class TextModality(Modality):
    """Text: a `datasets.Value("string")` column, stored as token ids padded to the decoder's max_length; raw values
    are strings."""

    name = "text"
    uses_tokenizer = True
    folder_value_description = "a text string"
    feature_description = "Value('string') for text"
    classifier_class = TextClassifier
    classifier_epochs = 20
    classifier_learning_rate = 1e-2

    # ---- data
    def matches_feature(self, name: str, feature) -> bool:
        import datasets

        return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")

    def folder_feature(self):
        import datasets

        return datasets.Value("string")

    # ---- model
    def encode(self, name: str, values, decoder, tokenizer=None) -> tuple[np.ndarray, np.ndarray]:
        arrays = np.full((len(values), decoder.max_length), decoder.pad_token_id, np.int64)
        # A missing caption's placeholder is <bos> <eos>: a valid sequence no score reads (the mask drops it).
        arrays[:, :2] = decoder.bos_token_id, decoder.eos_token_id
        present = np.array([value is not None for value in values], bool)
        texts = [value for value in values if value is not None]
        if not all(isinstance(text, str) and text.strip() for text in texts):
            raise ValueError(f"modality {name!r} takes non-blank strings (or None for a missing one)")
        if texts:
            # stacklevel: this, the model's encode_modality and prepare_inputs, then the caller of prepare_inputs
            warn_unknown_words(tokenizer, texts, stacklevel=5)
            rows = np.flatnonzero(present)
            for row, ids in zip(rows, tokenizer(texts)["input_ids"]):
                if len(ids) > decoder.max_length:
                    raise ValueError(f"modality {name!r}: example {row} has {len(ids)} tokens with <bos>/<eos>, more "
                                     f"than its max_length {decoder.max_length}: {values[row]!r}. The limit is the "
                                     f"config's modalities[{name!r}]['decoder_config']['max_length'], set when "
                                     "training with `hf-latent-ebm train --task multimodal --max-length N`")
                arrays[row, :len(ids)] = ids
        return arrays, present

    def stored_feature(self, decoder):
        import datasets

        return datasets.List(datasets.Value("int64"), length=decoder.max_length)

    def to_raw(self, values: torch.Tensor, tokenizer=None) -> list[str]:
        hidden = set(tokenizer.all_special_ids)
        return [tokenizer.decode([i for i in row.tolist() if i not in hidden]) for row in values]

    def tokenizer_ids(self, spec: dict) -> dict:
        return {key: spec["decoder_config"][key] for key in ("vocab_size", "pad_token_id", "bos_token_id",
                                                             "eos_token_id")}

    # ---- CLI
    def specs_from_data(self, dataset, names: list[str], options) -> tuple[dict, object]:
        """A text modality per column over one tokenizer (`options.tokenizer`, `options.vocab_size`) trained on all
        of them, with room for `options.max_length` tokens (by default twice the longest training text's, at least
        MIN_MAX_LENGTH)."""
        from ..tokenization import train_tokenizer

        texts = [text for name in names for text in dataset[name] if text is not None]
        tokenizer = train_tokenizer(texts, kind=options.tokenizer, vocab_size=options.vocab_size, min_frequency=1)
        longest = max((len(ids) for ids in tokenizer(texts)["input_ids"]), default=0)
        if options.max_length is not None and options.max_length < longest:
            raise ValueError(f"--max-length {options.max_length} is shorter than the longest training caption, "
                             f"{longest} tokens with <bos>/<eos>")
        # Headroom for captions longer than the training ones (conditioning on a user's caption): it costs stored
        # padding only, since batches are cut to their longest caption and generation stops at <eos>.
        max_length = options.max_length if options.max_length is not None else max(2 * longest, MIN_MAX_LENGTH)
        return {name: text_modality(tokenizer, max_length=max_length) for name in names}, tokenizer

    def max_length(self, spec: dict) -> int:
        return spec["decoder_config"]["max_length"]

    # ---- metrics
    def count(self, values) -> int:
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise ValueError(f"text values must be a list of strings, got {type(values).__name__}")
        return len(values)

    def build_classifier(self, values, num_labels: int) -> TextClassifier:
        check_texts(values)
        return TextClassifier(TextClassifier.build_vocabulary(values), num_labels)


__all__ = ["TextModality", "TextClassifier", "text_modality", "text_words", "check_texts",
           "TEXT_CONDITIONING_WEIGHT", "MIN_MAX_LENGTH"]
