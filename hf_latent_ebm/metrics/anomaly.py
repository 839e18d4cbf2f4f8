"""Anomaly-detection metrics."""

import torch


def auprc(scores: torch.Tensor, is_anomaly: torch.Tensor) -> float:
    """
    Area under the precision-recall curve, anomalies as the positive class, higher score = more anomalous.

    Computed as average precision, sum over thresholds of (R_n - R_{n-1}) P_n with tied scores forming one
    threshold: the estimator scikit-learn's `average_precision_score` uses.
    """
    scores, is_anomaly = torch.as_tensor(scores).flatten().double(), torch.as_tensor(is_anomaly).flatten().bool()
    if scores.shape != is_anomaly.shape:
        raise ValueError(f"scores and labels differ in length: {scores.numel()} vs {is_anomaly.numel()}")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    num_positive = int(is_anomaly.sum())
    if num_positive == 0:
        raise ValueError("AUPRC needs at least one anomaly (positive label)")
    order = torch.argsort(scores, descending=True, stable=True)
    sorted_scores, true_positives = scores[order], is_anomaly[order].double().cumsum(0)
    last_of_tie = torch.ones_like(sorted_scores, dtype=torch.bool)
    last_of_tie[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    predicted_positive = torch.arange(1, len(scores) + 1, dtype=torch.float64)[last_of_tie]
    precision = true_positives[last_of_tie] / predicted_positive
    recall = true_positives[last_of_tie] / num_positive
    recall_gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((recall_gain * precision).sum())
