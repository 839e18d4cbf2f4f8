"""Health event prediction metrics, as used to evaluate Chet (Lu, Han & Ning, "Context-aware Health Event Prediction
via Transition Functions on Dynamic Disease Graphs", AAAI 2022); the semantics follow the metrics.py of its code.

Diagnosis prediction (multi-label over C codes; scores and targets are (patients, codes)):
  * weighted F1 with the top-|y| rule: for each patient the k = |y_i| highest-scored codes are predicted positive and
    the rest negative; F1 per code = 2TP / (2TP + FP + FN) (0 when the denominator is 0), averaged with each code's
    support (patients having it) as weight: scikit-learn's f1_score(average="weighted") on the indicator matrices.
  * recall@k: mean over patients of |top-k codes ∩ y_i| / |y_i|; patients without true codes are skipped.
Heart-failure prediction (binary):
  * ROC-AUC as the Mann-Whitney statistic with average ranks for tied scores (scikit-learn's roc_auc_score).
  * PR-AUC as average precision, tied scores forming one threshold (scikit-learn's average_precision_score); with a
    low prevalence it shows what ROC-AUC hides: how precise the top of the ranking is.
  * F1 of the positive class with probability > threshold predicted positive, at 0.5 and at a decision threshold
    chosen on validation (`f1_optimal_threshold`).

Tied scores are ranked by a stable descending sort, so among equal scores the lower code index ranks first.
Inputs may be torch tensors, numpy arrays or (nested) lists. Every function returns a Python float in [0, 1].
"""

import torch

from .anomaly import auprc


def _as_tensor(value, name: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name} must be a numeric array (tensor, numpy array or list of equal-length rows), "
                         f"got {type(value).__name__}: {error}") from None
    if tensor.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    return tensor.detach().cpu()


def _scores(value, name: str) -> torch.Tensor:
    scores = _as_tensor(value, name).double()
    if not torch.isfinite(scores).all():
        raise ValueError(f"{name} contain NaN or inf")
    return scores


def _binary(value, name: str) -> torch.Tensor:
    labels = _as_tensor(value, name)
    if not ((labels == 0) | (labels == 1)).all():
        found = torch.unique(labels[(labels != 0) & (labels != 1)])[:5].tolist()
        raise ValueError(f"{name} must hold only 0 and 1, found other values such as {found}")
    return labels.bool()


def _diagnosis_inputs(scores, targets) -> tuple[torch.Tensor, torch.Tensor]:
    scores, targets = _scores(scores, "scores"), _binary(targets, "targets")
    if scores.dim() != 2 or scores.shape != targets.shape:
        raise ValueError("scores and targets must both be (patients, codes) matrices of the same shape, got "
                         f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)}")
    if scores.numel() == 0:
        raise ValueError(f"need at least one patient and one code, got shape {tuple(scores.shape)}")
    return scores, targets


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank (0 = highest score) of every code within its patient's row; ties go to the lower code index."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    positions = torch.arange(scores.shape[1]).expand_as(order).contiguous()
    return torch.empty_like(order).scatter_(1, order, positions)


def _top_k(ranks: torch.Tensor, k: int) -> torch.Tensor:
    if isinstance(k, bool) or not hasattr(k, "__index__") or not 1 <= int(k) <= ranks.shape[1]:
        raise ValueError(f"k must be an int between 1 and the number of codes ({ranks.shape[1]}), got {k!r}")
    return ranks < int(k)


def _weighted_f1(ranks: torch.Tensor, targets: torch.Tensor) -> float:
    predicted = ranks < targets.sum(1, keepdim=True)  # top-|y_i| codes of each patient
    true_positive = (predicted & targets).sum(0).double()
    false_positive = (predicted & ~targets).sum(0).double()
    false_negative = (~predicted & targets).sum(0).double()
    support = targets.sum(0).double()
    if support.sum() == 0:
        return 0.0
    denominator = 2 * true_positive + false_positive + false_negative
    f1 = torch.where(denominator > 0, 2 * true_positive / denominator.clamp(min=1), torch.zeros_like(denominator))
    return float((f1 * support).sum() / support.sum())


def _recall(ranks: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    hits = (_top_k(ranks, k) & targets).sum(1).double()
    num_true = targets.sum(1).double()
    has_codes = num_true > 0
    if not has_codes.any():
        raise ValueError("recall@k needs at least one patient with a true code; every target row is empty")
    return float((hits[has_codes] / num_true[has_codes]).mean())


def top_k_weighted_f1(scores, targets) -> float:
    """Support-weighted F1 over codes with each patient's top-|y_i| scored codes predicted positive."""
    scores, targets = _diagnosis_inputs(scores, targets)
    return _weighted_f1(_ranks(scores), targets)


def recall_at_k(scores, targets, k: int) -> float:
    """Mean over patients with true codes of the fraction of their true codes among their k highest-scored codes."""
    scores, targets = _diagnosis_inputs(scores, targets)
    return _recall(_ranks(scores), targets, k)


# The k of recall@k reported for diagnosis prediction (the paper's); a cohort needs at least max(k) codes.
RECALL_KS = (10, 20)


def diagnosis_metrics(scores, targets, ks=RECALL_KS) -> dict:
    """{"weighted_f1": ..., "recall_at_<k>": ... for k in ks}, all fractions in [0, 1]."""
    scores, targets = _diagnosis_inputs(scores, targets)
    ks = (ks,) if isinstance(ks, int) else tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one k for recall@k")
    ranks = _ranks(scores)
    return {"weighted_f1": _weighted_f1(ranks, targets), **{f"recall_at_{k}": _recall(ranks, targets, k) for k in ks}}


def _binary_inputs(values, labels, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    values, labels = _scores(values, name), _binary(labels, "labels")
    if values.dim() != 1 or values.shape != labels.shape or values.numel() == 0:
        raise ValueError(f"{name} and labels must be non-empty 1-D arrays of the same length, got shapes "
                         f"{tuple(values.shape)} and {tuple(labels.shape)}")
    return values, labels


def roc_auc(probabilities_or_scores, labels) -> float:
    """Area under the ROC curve, (sum of positive ranks - P(P+1)/2) / (P N) with tied scores sharing their mean rank."""
    scores, labels = _binary_inputs(probabilities_or_scores, labels, "scores")
    num_positive = int(labels.sum())
    num_negative = labels.numel() - num_positive
    if num_positive == 0 or num_negative == 0:
        raise ValueError(f"ROC-AUC needs both classes in labels, got {num_positive} positives and {num_negative} "
                         "negatives")
    _, group, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    mean_rank = torch.cumsum(counts, 0).double() - (counts.double() - 1) / 2  # 1-based ranks, ascending scores
    positive_rank_sum = mean_rank[group][labels].sum()
    return float((positive_rank_sum - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative))


def _probabilities(probabilities, labels) -> tuple[torch.Tensor, torch.Tensor]:
    probabilities, labels = _binary_inputs(probabilities, labels, "probabilities")
    if ((probabilities < 0) | (probabilities > 1)).any():
        raise ValueError("probabilities must lie in [0, 1], got values in "
                         f"[{float(probabilities.min())}, {float(probabilities.max())}]; apply a sigmoid to logits")
    return probabilities, labels


def binary_f1(probabilities, labels, threshold: float = 0.5) -> float:
    """F1 of the positive class, probabilities > threshold predicted positive; 0 when nothing is positive."""
    probabilities, labels = _probabilities(probabilities, labels)
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    predicted = probabilities > threshold
    true_positive = int((predicted & labels).sum())
    errors = int((predicted ^ labels).sum())
    return 2 * true_positive / (2 * true_positive + errors) if true_positive + errors else 0.0


def average_precision(probabilities_or_scores, labels) -> float:
    """PR-AUC as average precision, sum over distinct scores of (R_n - R_{n-1}) P_n (scikit-learn's
    average_precision_score); needs at least one positive label."""
    scores, labels = _binary_inputs(probabilities_or_scores, labels, "scores")
    if not labels.any():
        raise ValueError(f"PR-AUC needs at least one positive label, got {labels.numel()} negatives")
    return auprc(scores, labels)


# The decision threshold when validation cannot choose one (see f1_optimal_threshold), and the one reported beside it.
DEFAULT_THRESHOLD = 0.5


def f1_optimal_threshold(probabilities, labels) -> float:
    """
    The decision threshold t that maximises F1 on these (validation) probabilities and labels, with the rule of
    `binary_f1`: probability > t is predicted positive.

    Every set of predictions that a threshold can make is "the patients scoring at least s", for s one of the
    distinct scores; for each, t is the midpoint between s and the next lower distinct score (0 below the lowest),
    so it separates the two with a margin on either side. Among sets with equal F1 the one with the higher threshold
    wins: as good on validation, with fewer patients flagged. Fallback, `DEFAULT_THRESHOLD` (0.5): when no threshold
    gives an F1 above 0 (no positive label) or all probabilities are equal (nothing is ranked, so a threshold could
    only flag everybody or nobody). Returns a Python float in [0, 1].
    """
    probabilities, labels = _probabilities(probabilities, labels)
    values, group, counts = torch.unique(probabilities, return_inverse=True, return_counts=True)  # ascending
    if len(values) < 2 or not labels.any():
        return DEFAULT_THRESHOLD
    positives = torch.zeros(len(values), dtype=torch.float64).index_add_(0, group, labels.double())
    # Candidate j predicts positive the patients scoring values[j] or more.
    true_positive = positives.flip(0).cumsum(0).flip(0)
    predicted = counts.double().flip(0).cumsum(0).flip(0)
    f1 = 2 * true_positive / (predicted + labels.sum())
    lower = torch.cat([values.new_zeros(1), values[:-1]])
    thresholds = (lower + values) / 2
    thresholds = torch.where(thresholds < values, thresholds, lower)  # adjacent floats: the midpoint rounds up
    f1 = torch.where(thresholds < values, f1, torch.full_like(f1, -1.0))  # a lowest score of 0 cannot be flagged
    best = f1.max()
    if best <= 0:
        return DEFAULT_THRESHOLD
    return float(thresholds[torch.nonzero(f1 == best).max()])


def heart_failure_metrics(probabilities, labels, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """{"auc": ROC-AUC, "pr_auc": average precision, "f1": F1 at `threshold` (the decision threshold, e.g. the one
    `f1_optimal_threshold` chose on validation), "f1_at_0.5": F1 at 0.5}."""
    return {"auc": roc_auc(probabilities, labels), "pr_auc": average_precision(probabilities, labels),
            "f1": binary_f1(probabilities, labels, threshold),
            "f1_at_0.5": binary_f1(probabilities, labels, DEFAULT_THRESHOLD)}
