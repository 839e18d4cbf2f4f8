"""Health event prediction metrics, as used to evaluate Chet (Lu, Han & Ning, "Context-aware Health Event Prediction
via Transition Functions on Dynamic Disease Graphs", AAAI 2022); the semantics follow the metrics.py of its code.

Diagnosis prediction (multi-label over C codes; scores and targets are (patients, codes)):
  * weighted F1 with the top-|y| rule: for each patient the k = |y_i| highest-scored codes are predicted positive and
    the rest negative; F1 per code = 2TP / (2TP + FP + FN) (0 when the denominator is 0), averaged with each code's
    support (patients having it) as weight: scikit-learn's f1_score(average="weighted") on the indicator matrices.
  * recall@k: mean over patients of |top-k codes ∩ y_i| / |y_i|; patients without true codes are skipped.
Heart-failure prediction (binary):
  * ROC-AUC as the Mann-Whitney statistic with average ranks for tied scores (scikit-learn's roc_auc_score).
  * F1 of the positive class with probability > threshold (0.5) predicted positive.

Tied scores are ranked by a stable descending sort, so among equal scores the lower code index ranks first.
Inputs may be torch tensors, numpy arrays or (nested) lists. Every function returns a Python float in [0, 1].
"""

import torch


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


def binary_f1(probabilities, labels, threshold: float = 0.5) -> float:
    """F1 of the positive class, probabilities > threshold predicted positive; 0 when nothing is positive."""
    probabilities, labels = _binary_inputs(probabilities, labels, "probabilities")
    if ((probabilities < 0) | (probabilities > 1)).any():
        raise ValueError("probabilities must lie in [0, 1], got values in "
                         f"[{float(probabilities.min())}, {float(probabilities.max())}]; apply a sigmoid to logits")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    predicted = probabilities > threshold
    true_positive = int((predicted & labels).sum())
    errors = int((predicted ^ labels).sum())
    return 2 * true_positive / (2 * true_positive + errors) if true_positive + errors else 0.0


def heart_failure_metrics(probabilities, labels, threshold: float = 0.5) -> dict:
    """{"auc": ROC-AUC of the probabilities, "f1": F1 at the threshold}."""
    return {"auc": roc_auc(probabilities, labels), "f1": binary_f1(probabilities, labels, threshold)}
