"""Text metrics of the latent-EBM text papers: importance-sampled NLL / perplexity, forward and reverse perplexity
with a language model trained for the purpose, active units, and reconstruction BLEU."""

import math
from collections import Counter

import torch
from torch import nn

from ..decoders.text import RecurrentTextDecoder
from ..distributions import diagonal_gaussian_log_density, sample_diagonal_gaussian


def corpus_bleu(references: list[list[str]], hypotheses: list[list[str]], max_order: int = 4) -> float:
    """Corpus BLEU (Papineni et al. 2002): geometric mean of clipped 1..max_order-gram precisions times the brevity
    penalty, in [0, 1], one reference per hypothesis, no smoothing (0 when some order has no match)."""
    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need as many references as hypotheses (> 0), got {len(references)} and {len(hypotheses)}")
    matches, totals = [0] * max_order, [0] * max_order
    reference_length = hypothesis_length = 0
    for reference, hypothesis in zip(references, hypotheses):
        reference_length += len(reference)
        hypothesis_length += len(hypothesis)
        for order in range(1, max_order + 1):
            reference_counts = Counter(tuple(reference[i:i + order]) for i in range(len(reference) - order + 1))
            hypothesis_counts = Counter(tuple(hypothesis[i:i + order]) for i in range(len(hypothesis) - order + 1))
            matches[order - 1] += sum(min(count, reference_counts[gram]) for gram, count in hypothesis_counts.items())
            totals[order - 1] += max(len(hypothesis) - order + 1, 0)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_order
    brevity = 1.0 if hypothesis_length > reference_length else math.exp(1 - reference_length / max(hypothesis_length, 1))
    return brevity * math.exp(log_precision)


def active_units(posterior_means: torch.Tensor, threshold: float = 0.01,
                 estimator_variance: torch.Tensor | None = None) -> int:
    """
    Latent dimensions whose posterior mean varies across data: Cov_x(E[z | x]) > threshold (Burda et al. 2016).

    When the means are Monte Carlo estimates (the average of K Langevin chains), their spread across x also holds
    the estimator's own noise, E_x[Var(z | x)] / K per dimension; pass it as `estimator_variance` to subtract it,
    or a collapsed posterior would look active.
    """
    if posterior_means.dim() != 2 or posterior_means.shape[0] < 2:
        raise ValueError(f"posterior_means must be (num_examples >= 2, latent_dim), got {tuple(posterior_means.shape)}")
    variance = posterior_means.var(dim=0)
    if estimator_variance is not None:
        variance = variance - estimator_variance
    return int((variance > threshold).sum())


def perplexity(total_nll: float, num_tokens: int) -> float:
    """exp(total NLL in nats / number of predicted tokens)."""
    if num_tokens <= 0:
        raise ValueError("perplexity needs at least one token")
    return math.exp(total_nll / num_tokens)


def num_predicted_tokens(input_ids: torch.Tensor, pad_token_id: int) -> int:
    """Tokens a model predicts: everything after <bos> that is not padding (each <eos> included)."""
    return int((input_ids[:, 1:] != pad_token_id).sum())


# ---- language models for forward / reverse perplexity -----------------------------------------------------------
class LanguageModel(nn.Module):
    """An LSTM language model: the text decoder with its latent input held at zero (so it conditions on nothing)."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, pad_token_id: int, bos_token_id: int,
                 eos_token_id: int, dropout: float = 0.2):
        super().__init__()
        self.decoder = RecurrentTextDecoder(vocab_size, 1, embedding_dim, hidden_dim, 1, dropout, pad_token_id,
                                            bos_token_id, eos_token_id)

    def negative_log_likelihood(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.negative_log_likelihood(input_ids, input_ids.new_zeros(input_ids.shape[0], 1).float())


def train_language_model(input_ids: torch.Tensor, vocab_size: int, pad_token_id: int, bos_token_id: int,
                         eos_token_id: int, num_steps: int = 2000, batch_size: int = 64, embedding_dim: int = 128,
                         hidden_dim: int = 256, learning_rate: float = 1e-3, seed: int = 0,
                         progress: bool = False, device: str | torch.device = "cpu") -> LanguageModel:
    """Train an LSTM LM on token ids (N, L); used to score samples (forward PPL) or trained on samples (reverse).
    The batches are drawn on the CPU with a seeded generator and moved to `device`."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = LanguageModel(vocab_size, embedding_dim, hidden_dim, pad_token_id, bos_token_id, eos_token_id).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(num_steps), desc="language model", disable=not progress):
        batch = input_ids[torch.randint(0, input_ids.shape[0], (batch_size,), generator=generator)].to(device)
        loss = model.negative_log_likelihood(batch).sum() / max(num_predicted_tokens(batch, pad_token_id), 1)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return model.eval()


@torch.no_grad()
def language_model_perplexity(model: LanguageModel, input_ids: torch.Tensor, batch_size: int = 256) -> float:
    pad, device = model.decoder.pad_token_id, next(model.parameters()).device
    total = sum(model.negative_log_likelihood(input_ids[i:i + batch_size].to(device)).sum().item()
                for i in range(0, input_ids.shape[0], batch_size))
    return perplexity(total, num_predicted_tokens(input_ids, pad))


# ---- likelihood of the latent-variable model ---------------------------------------------------------------------
def log_partition(prior, num_samples: int = 100_000, generator: torch.Generator | None = None) -> float:
    """log Z = log E_{p0}[exp(-E(z))] of the prior (Monte Carlo over p0; 0 for a prior without an energy)."""
    return prior.log_partition(num_samples, generator)


@torch.no_grad()
def importance_sampled_nll(model, input_ids: torch.Tensor, num_samples: int = 100, num_chains: int = 8,
                           log_z: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""
    -log p(x) per sequence by importance sampling:
    log p(x) ~= logsumexp_s [log p(x | z_s) + log p(z_s) - log q(z_s | x)] - log S, z_s ~ q(. | x),

    with q = `model.posterior_gaussian` (the VAE's encoder, or a Gaussian fitted to posterior Langevin chains) and
    log p(z) = -E(z) + log N(z; 0, prior_sigma^2) - log Z, log Z estimated by `log_partition`. The estimate is a
    stochastic lower bound on log p(x) in expectation (an upper bound on the NLL), tight as S grows and as q nears
    p(z | x). The Langevin q is fitted to Langevin-proper chains on the model's own p(z | x) whatever chain the model
    was trained with: the text defaults' tempered chains on p0 are narrower than p(z | x), and a proposal fitted to
    them loosens the bound.
    """
    prior = model.prior
    log_z = log_partition(prior, generator=generator) if log_z is None else log_z
    mean, std = model.posterior_gaussian(input_ids, num_chains=num_chains, generator=generator, langevin_proper=True)
    log_variance = 2 * std.log()
    log_weights = []
    for _ in range(num_samples):
        latents = sample_diagonal_gaussian(mean, log_variance, generator)
        log_prior = -prior.energy(latents) + prior.reference_log_density(latents) - log_z
        log_likelihood = -model.decoder.negative_log_likelihood(input_ids, latents)
        log_weights.append(log_likelihood + log_prior - diagonal_gaussian_log_density(latents, mean, log_variance))
    return -(torch.logsumexp(torch.stack(log_weights).double(), dim=0) - math.log(num_samples))


__all__ = ["corpus_bleu", "active_units", "perplexity", "num_predicted_tokens", "LanguageModel",
           "train_language_model", "language_model_perplexity", "log_partition", "importance_sampled_nll"]
