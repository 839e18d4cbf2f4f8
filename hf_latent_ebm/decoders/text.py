"""Autoregressive text decoders p(x | z) = prod_t p(x_t | x_<t, z) over token ids."""

import dataclasses

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..registry import PartConfig
from ..validation import require_at_least
from .base import Decoder


@strict
@dataclasses.dataclass
class TextDecoderConfig(PartConfig):
    """
    Settings every text decoder has (the model config's `decoder_config`; the text model's config supplies the
    vocabulary and token facts, `vocab_size` to `max_length`, from its own fields, which its tokenizer shares).
    Defaults of the network's sizes are the text model's.

    Args:
        vocab_size, pad_token_id, bos_token_id, eos_token_id (`int`): The vocabulary and its special tokens.
        unk_token_id (`int`, *optional*): Never generated.
        max_length (`int`, *optional*): Longest sequence, <bos> and <eos> included (None: no limit).
        hidden_dim (`int`, defaults to 128): Width of the network.
        num_layers (`int`, defaults to 1): Layers.
        dropout (`float`, defaults to 0.5): Dropout while training.
    """

    vocab_size: int
    pad_token_id: int
    bos_token_id: int
    eos_token_id: int
    unk_token_id: int | None = None
    max_length: int | None = None
    hidden_dim: int = 128
    num_layers: int = 1
    dropout: float = 0.5

    def validate_sizes(self):
        require_at_least(self, ("vocab_size", "hidden_dim", "num_layers"))
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (<bos> and <eos>) or None, got {self.max_length}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@strict
@dataclasses.dataclass
class RecurrentTextDecoderConfig(TextDecoderConfig):
    """The text decoder's settings plus the token embedding's width (`embedding_dim`, defaults to 128)."""

    embedding_dim: int = 128

    def validate_embedding(self):
        require_at_least(self, ("embedding_dim",))


@strict
@dataclasses.dataclass
class TransformerTextDecoderConfig(TextDecoderConfig):
    """The text decoder's settings plus the attention heads (`num_heads`, defaults to 4, dividing `hidden_dim`)."""

    num_heads: int = 4

    def validate_heads(self):
        require_at_least(self, ("num_heads",))
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} must be a multiple of num_heads {self.num_heads}")
        if self.max_length is None:
            raise ValueError("the transformer decoder's position embedding needs max_length")


class TextDecoderBase(Decoder):
    """Scoring, sampling and input checks shared by the text decoders; subclasses define `hidden_states(input_ids,
    latents, lengths)` (the features the `output` projection turns into next-token logits)."""

    input_names = ("input_ids",)
    modality = "text"

    def __init__(self, vocab_size: int, pad_token_id: int, bos_token_id: int, eos_token_id: int,
                 max_length: int | None = None, unk_token_id: int | None = None):
        super().__init__()
        self.vocab_size, self.max_length = vocab_size, max_length
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id
        self.unk_token_id = unk_token_id  # never generated (unless `generate(..., suppress_unk=False)`)

    def check_observations(self, input_ids, check_values: bool = True) -> None:
        """A (batch, length) torch.long tensor of at least one sequence of >= 2 tokens, no longer than max_length,
        with ids in the vocabulary."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dtype != torch.long or input_ids.dim() != 2:
            raise ValueError("input_ids must be a (batch, length) torch.long tensor, got "
                             f"{getattr(input_ids, 'dtype', type(input_ids).__name__)} "
                             f"{tuple(getattr(input_ids, 'shape', ()))}")
        if input_ids.shape[0] == 0 or input_ids.shape[1] < 2:
            raise ValueError(f"input_ids needs at least one sequence of >= 2 tokens, got {tuple(input_ids.shape)}")
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            raise ValueError(f"input_ids has {input_ids.shape[1]} positions, more than max_length "
                             f"{self.max_length}; truncate when tokenizing")
        if check_values:
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.vocab_size:
                raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got [{low}, {high}]: "
                                 "was this batch made by another tokenizer?")

    def compact(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Drop the columns that are padding in every row: they change no score and cost recurrent steps."""
        length = int((input_ids != self.pad_token_id).any(dim=0).nonzero().max()) + 1
        return input_ids[:, :length]

    def decode(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Token ids sampled at temperature 1, up to max_length."""
        return self.generate(latents, self.max_length, generator=generator)

    def forward(self, input_ids: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """Next-token logits (batch, length, vocab) at every input position."""
        return self.output(self.hidden_states(input_ids, latents))

    def token_log_likelihoods(self, input_ids: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """log p(x_t | x_<t, z) for every target position t >= 1, 0 at padding; shape (batch, length - 1)."""
        inputs, targets = input_ids[:, :-1], input_ids[:, 1:]
        scored = targets != self.pad_token_id
        lengths = scored.sum(dim=1)
        right_padded = torch.equal(scored, torch.arange(scored.shape[1], device=scored.device) < lengths[:, None])
        hidden = self.hidden_states(inputs, latents, lengths=lengths if right_padded else None)
        # Only scored positions go through the vocabulary projection, the costliest layer: padding is skipped
        # (a third of a typical batch), which every posterior Langevin step pays for.
        log_likelihoods = hidden.new_zeros(targets.shape)
        log_likelihoods[scored] = -F.cross_entropy(self.output(hidden[scored]), targets[scored], reduction="none")
        return log_likelihoods

    def negative_log_likelihood(self, input_ids: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """-log p(x | z), summed over each sequence's tokens (its <eos> included, padding excluded)."""
        return -self.token_log_likelihoods(input_ids, latents).sum(dim=1)

    @torch.no_grad()
    def generate(self, latents: torch.Tensor, max_length: int, temperature: float = 1.0, greedy: bool = False,
                 generator: torch.Generator | None = None, suppress_unk: bool = True) -> torch.Tensor:
        """Token ids (N, <= max_length) starting with <bos>; after a sequence's <eos> come <pad>s. With
        `suppress_unk` (the default) and a known `unk_token_id`, <unk> is never sampled nor chosen greedily (its
        logit is masked, so the others' probabilities are renormalised); `suppress_unk=False` samples the decoder's
        whole distribution, as metrics that score samples against a test set holding <unk> need."""
        masked = self.unk_token_id if suppress_unk else None
        ids = torch.full((latents.shape[0], 1), self.bos_token_id, dtype=torch.long, device=latents.device)
        finished = torch.zeros(latents.shape[0], dtype=torch.bool, device=latents.device)
        for _ in range(max_length - 1):
            # The whole prefix is re-read each step: sequences are short, and one path serves every decoder type.
            # Only the last position goes through the vocabulary projection: all positions' logits, a larger
            # tensor at every step, filled GPU memory through the allocator's cache for 10k samples.
            logits = self.output(self.hidden_states(ids, latents)[:, -1])
            if masked is not None:
                logits[:, masked] = float("-inf")
            if greedy:
                next_ids = logits.argmax(dim=-1)
            else:
                probabilities = F.softmax(logits / temperature, dim=-1)
                next_ids = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
            next_ids = torch.where(finished, torch.full_like(next_ids, self.pad_token_id), next_ids)
            ids = torch.cat([ids, next_ids[:, None]], dim=1)
            finished |= next_ids == self.eos_token_id
            if bool(finished.all()):
                break
        return ids


class RecurrentTextDecoder(TextDecoderBase):
    r"""
    LSTM/GRU decoder of the papers: z sets the initial state (through a Linear layer) and is concatenated to every
    input embedding.

    Args:
        vocab_size (`int`), latent_dim (`int`), embedding_dim (`int`), hidden_dim (`int`), num_layers (`int`),
        dropout (`float`), pad/bos/eos token ids (`int`), max_length (`int`, optional), unk_token_id (`int`,
        optional): never generated. The cell is the class's (`cell`: "lstm" here, "gru" for `GRUTextDecoder`).
    """

    config_class = RecurrentTextDecoderConfig
    cell = "lstm"

    def __init__(self, vocab_size: int, latent_dim: int, embedding_dim: int, hidden_dim: int, num_layers: int,
                 dropout: float, pad_token_id: int, bos_token_id: int, eos_token_id: int,
                 max_length: int | None = None, unk_token_id: int | None = None):
        super().__init__(vocab_size, pad_token_id, bos_token_id, eos_token_id, max_length, unk_token_id)
        self.num_layers, self.hidden_dim = num_layers, hidden_dim
        cell = self.cell
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_token_id)
        num_states = 2 if cell == "lstm" else 1  # the LSTM's h and c
        self.latent_to_state = nn.Linear(latent_dim, num_states * num_layers * hidden_dim)
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_class(embedding_dim + latent_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_dim, vocab_size)

    def hidden_states(self, input_ids: torch.Tensor, latents: torch.Tensor,
                      lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Recurrent states (batch, length, hidden). With `lengths` (scored positions per row) and right-padded
        rows, the recurrence runs on each row's own length only (a packed sequence); states past it are 0."""
        batch_size, length = input_ids.shape
        embeddings = self.dropout(self.embedding(input_ids))
        inputs = torch.cat([embeddings, latents[:, None, :].expand(-1, length, -1)], dim=-1)
        states = self.latent_to_state(latents).view(batch_size, -1, self.num_layers, self.hidden_dim)
        states = states.permute(1, 2, 0, 3).contiguous()  # (num_states, layers, batch, hidden)
        initial_state = (states[0], states[1]) if self.cell == "lstm" else states[0]
        if lengths is not None and bool((lengths < length).any()):
            # Rows of zero length still run one step (pack needs >= 1); nothing of it is scored.
            packed = pack_padded_sequence(inputs, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
            hidden, _ = self._recur(packed, initial_state)
            hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=length)
        else:
            hidden, _ = self._recur(inputs, initial_state)
        return self.dropout(hidden)

    def _recur(self, inputs, initial_state):
        # cuDNN's RNN backward runs in training mode only, and posterior chains differentiate through the decoder
        # in eval mode too (metrics, encode_text); there PyTorch's own RNN kernels take over.
        if self.training or not torch.is_grad_enabled() or not self.embedding.weight.is_cuda:
            return self.rnn(inputs, initial_state)
        with torch.backends.cudnn.flags(enabled=False):
            return self.rnn(inputs, initial_state)


class GRUTextDecoder(RecurrentTextDecoder):
    """`RecurrentTextDecoder` with a GRU cell (registered as "gru")."""

    cell = "gru"


class TransformerTextDecoder(TextDecoderBase):
    r"""
    A small causal Transformer: z, projected to the model width, is added to every position's token and position
    embedding.

    Args:
        vocab_size (`int`), latent_dim (`int`), hidden_dim (`int`): model width, num_layers (`int`),
        num_heads (`int`), max_length (`int`), dropout (`float`), pad/bos/eos token ids (`int`), unk_token_id
        (`int`, optional): never generated.
    """

    config_class = TransformerTextDecoderConfig

    def __init__(self, vocab_size: int, latent_dim: int, hidden_dim: int, num_layers: int, num_heads: int,
                 max_length: int, dropout: float, pad_token_id: int, bos_token_id: int, eos_token_id: int,
                 unk_token_id: int | None = None):
        super().__init__(vocab_size, pad_token_id, bos_token_id, eos_token_id, max_length, unk_token_id)
        self.token_embedding = nn.Embedding(vocab_size, hidden_dim, padding_idx=pad_token_id)
        self.position_embedding = nn.Embedding(max_length, hidden_dim)
        self.latent_projection = nn.Linear(latent_dim, hidden_dim)
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, 4 * hidden_dim, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, vocab_size)

    def hidden_states(self, input_ids: torch.Tensor, latents: torch.Tensor,
                      lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Final-layer states (batch, length, hidden); `lengths` is not needed: causal attention never looks at the
        padding after a position."""
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        hidden = (self.token_embedding(input_ids) + self.position_embedding(positions)
                  + self.latent_projection(latents)[:, None, :])
        causal_mask = nn.Transformer.generate_square_subsequent_mask(length, device=input_ids.device)
        hidden = self.layers(hidden, mask=causal_mask, is_causal=True)
        return self.final_norm(hidden)


__all__ = ["TextDecoderBase", "RecurrentTextDecoder", "GRUTextDecoder", "TransformerTextDecoder", "TextDecoderConfig",
           "RecurrentTextDecoderConfig", "TransformerTextDecoderConfig"]
