"""An LSTM inference network over token ids."""

import dataclasses

import torch
from huggingface_hub.dataclasses import strict
from torch import nn

from ..registry import PartConfig
from ..validation import require_at_least
from .base import Encoder


@strict
@dataclasses.dataclass
class TextEncoderConfig(PartConfig):
    """Settings of the LSTM encoder (the model config's `encoder_config`; the text model's config supplies
    `vocab_size` and `pad_token_id`): the token embedding's and the LSTM's widths (defaults 128, the text
    model's)."""

    vocab_size: int
    pad_token_id: int
    embedding_dim: int = 128
    hidden_dim: int = 128

    def validate_sizes(self):
        require_at_least(self, ("vocab_size", "embedding_dim", "hidden_dim"))


class TextEncoder(Encoder):
    r"""
    An LSTM over the tokens whose final state (at each sequence's last real token) gives the mean and log-variance
    of q(z | x).

    Args:
        vocab_size (`int`), latent_dim (`int`), embedding_dim (`int`), hidden_dim (`int`), pad_token_id (`int`).
    """

    modality = "text"
    config_class = TextEncoderConfig

    def __init__(self, vocab_size: int, latent_dim: int, embedding_dim: int, hidden_dim: int, pad_token_id: int):
        super().__init__()
        self.pad_token_id = pad_token_id
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_token_id)
        self.rnn = nn.LSTM(embedding_dim, hidden_dim, batch_first=True)
        self.to_gaussian = nn.Linear(hidden_dim, 2 * latent_dim)

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, _ = self.rnn(self.embedding(input_ids))
        last = (input_ids != self.pad_token_id).sum(dim=1).clamp_min(1) - 1
        final = hidden[torch.arange(input_ids.shape[0], device=input_ids.device), last]
        mean, log_variance = self.to_gaussian(final).chunk(2, dim=-1)
        return mean, log_variance


__all__ = ["TextEncoder", "TextEncoderConfig"]
