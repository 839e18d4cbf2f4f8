"""Autoregressive text decoders p(x | z) = prod_t p(x_t | x_<t, z) over token ids."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class TextDecoderBase(nn.Module):
    """Scoring and sampling shared by the text decoders; subclasses define `hidden_states(input_ids, latents,
    lengths)` (the features the `output` projection turns into next-token logits)."""

    def __init__(self, pad_token_id: int, bos_token_id: int, eos_token_id: int):
        super().__init__()
        self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id

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
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Token ids (N, <= max_length) starting with <bos>; after a sequence's <eos> come <pad>s."""
        ids = torch.full((latents.shape[0], 1), self.bos_token_id, dtype=torch.long, device=latents.device)
        finished = torch.zeros(latents.shape[0], dtype=torch.bool, device=latents.device)
        for _ in range(max_length - 1):
            # The whole prefix is re-read each step: sequences are short, and one path serves every decoder type.
            # Only the last position goes through the vocabulary projection: all positions' logits, a larger
            # tensor at every step, filled GPU memory through the allocator's cache for 10k samples.
            logits = self.output(self.hidden_states(ids, latents)[:, -1])
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
        cell (`str`): "lstm" or "gru", dropout (`float`), pad/bos/eos token ids (`int`).
    """

    def __init__(self, vocab_size: int, latent_dim: int, embedding_dim: int, hidden_dim: int, num_layers: int,
                 cell: str, dropout: float, pad_token_id: int, bos_token_id: int, eos_token_id: int):
        super().__init__(pad_token_id, bos_token_id, eos_token_id)
        self.cell, self.num_layers, self.hidden_dim = cell, num_layers, hidden_dim
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


class TransformerTextDecoder(TextDecoderBase):
    r"""
    A small causal Transformer: z, projected to the model width, is added to every position's token and position
    embedding.

    Args:
        vocab_size (`int`), latent_dim (`int`), hidden_dim (`int`): model width, num_layers (`int`),
        num_heads (`int`), max_length (`int`), dropout (`float`), pad/bos/eos token ids (`int`).
    """

    def __init__(self, vocab_size: int, latent_dim: int, hidden_dim: int, num_layers: int, num_heads: int,
                 max_length: int, dropout: float, pad_token_id: int, bos_token_id: int, eos_token_id: int):
        super().__init__(pad_token_id, bos_token_id, eos_token_id)
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


__all__ = ["TextDecoderBase", "RecurrentTextDecoder", "TransformerTextDecoder"]
