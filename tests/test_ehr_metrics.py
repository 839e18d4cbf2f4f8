"""Health event prediction metrics (Chet): against scikit-learn, hand-worked cases, errors, evaluate modules."""

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from hf_latent_ebm.metrics import (binary_f1, diagnosis_metrics, evaluate_module_path, heart_failure_metrics,
                                   recall_at_k, roc_auc, top_k_weighted_f1)
from hf_latent_ebm.metrics.ehr import DEFAULT_THRESHOLD, average_precision, f1_optimal_threshold

sklearn_metrics = pytest.importorskip("sklearn.metrics")
needs_evaluate = pytest.mark.skipif(importlib.util.find_spec("evaluate") is None, reason="evaluate is not installed")

# Hand-worked: 3 patients, 4 codes.
SCORES = [[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.6, 0.1], [0.5, 0.4, 0.3, 0.2]]
TARGETS = [[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 1]]


def _random_diagnosis(seed, patients=40, codes=30):
    rng = np.random.default_rng(seed)
    scores = rng.random((patients, codes)).astype(np.float32)  # continuous: no ties, any tie rule agrees
    targets = (rng.random((patients, codes)) < 0.15).astype(np.int64)
    targets[:, -3:] = 0  # codes nobody has (zero support)
    targets[0] = 0  # a patient without codes
    return scores, targets


def _top_size_predictions(scores, targets):
    """Independent loop version of the top-|y| rule."""
    predictions = np.zeros_like(targets)
    for row, (score_row, target_row) in enumerate(zip(scores, targets)):
        k = int(target_row.sum())
        predictions[row, np.argsort(-score_row, kind="stable")[:k]] = 1
    return predictions


def _loop_recall(scores, targets, k):
    recalls = [len(set(np.argsort(-s, kind="stable")[:k]) & set(np.flatnonzero(t))) / t.sum()
               for s, t in zip(scores, targets) if t.sum() > 0]
    return float(np.mean(recalls))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagnosis_metrics_match_sklearn_and_loops(seed):
    scores, targets = _random_diagnosis(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_f1 = sklearn_metrics.f1_score(targets, _top_size_predictions(scores, targets), average="weighted",
                                               zero_division=0)
    assert top_k_weighted_f1(scores, targets) == pytest.approx(expected_f1, abs=1e-12)
    for k in (1, 10, 20, 30):
        assert recall_at_k(scores, targets, k) == pytest.approx(_loop_recall(scores, targets, k), abs=1e-12)
    result = diagnosis_metrics(torch.from_numpy(scores), torch.from_numpy(targets))
    assert set(result) == {"weighted_f1", "recall_at_10", "recall_at_20"}
    assert result["weighted_f1"] == pytest.approx(expected_f1, abs=1e-12)
    assert result["recall_at_10"] == pytest.approx(_loop_recall(scores, targets, 10), abs=1e-12)
    assert all(0 <= value <= 1 for value in result.values())


def test_diagnosis_hand_worked_example():
    # recall@2: patient 1 gets {0, 2} of {0, 1} -> 1/2, patient 2 {1, 2} of {1, 2, 3} -> 2/3, patient 3 {0, 1} of {3} -> 0
    assert recall_at_k(SCORES, TARGETS, 2) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # top-|y| predictions {0, 2}, {0, 1, 2}, {0}: per-code F1 1/2, 2/3, 2/3, 0 with supports 1, 2, 1, 2
    assert top_k_weighted_f1(SCORES, TARGETS) == pytest.approx((1 / 2 + 2 * 2 / 3 + 2 / 3) / 6)
    assert recall_at_k(SCORES, TARGETS, 4) == 1.0
    assert diagnosis_metrics(np.array(SCORES), np.array(TARGETS), ks=(2,)) == pytest.approx(
        {"weighted_f1": 5 / 12, "recall_at_2": 7 / 18})
    # A perfect ranking gets everything right.
    assert top_k_weighted_f1(TARGETS, TARGETS) == 1.0


def test_diagnosis_ties_go_to_the_lower_code_index_and_empty_targets():
    tied = [[0.5, 0.5, 0.5]]
    assert recall_at_k(tied, [[1, 0, 0]], 1) == 1.0
    assert recall_at_k(tied, [[0, 0, 1]], 1) == 0.0
    assert top_k_weighted_f1(tied, [[0, 0, 0]]) == 0.0  # all supports zero
    # Empty patients are skipped by recall@k.
    assert recall_at_k([[0.9, 0.1], [0.2, 0.8]], [[0, 0], [0, 1]], 1) == 1.0


def test_diagnosis_errors():
    with pytest.raises(ValueError, match="same shape"):
        top_k_weighted_f1(SCORES, TARGETS[:2])
    with pytest.raises(ValueError, match="same shape"):
        recall_at_k(SCORES[0], TARGETS[0], 1)
    with pytest.raises(ValueError, match="only 0 and 1"):
        top_k_weighted_f1(SCORES, [[2, 0, 0, 0]] * 3)
    with pytest.raises(ValueError, match="NaN"):
        top_k_weighted_f1([[float("nan"), 0, 0, 0]] * 3, TARGETS)
    with pytest.raises(ValueError, match="between 1 and the number of codes"):
        recall_at_k(SCORES, TARGETS, 5)
    with pytest.raises(ValueError, match="between 1 and the number of codes"):
        recall_at_k(SCORES, TARGETS, 0)
    with pytest.raises(ValueError, match="between 1 and the number of codes"):
        diagnosis_metrics(SCORES, TARGETS)  # default ks (10, 20) > 4 codes
    with pytest.raises(ValueError, match="every target row is empty"):
        recall_at_k(SCORES, [[0] * 4] * 3, 1)
    with pytest.raises(ValueError, match="equal-length rows"):
        top_k_weighted_f1([[0.1, 0.2], [0.3]], [[0, 1], [1]])
    with pytest.raises(ValueError, match="at least one"):
        diagnosis_metrics(SCORES, TARGETS, ks=())


def test_heart_failure_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    probabilities = rng.random(200)
    probabilities[:50] = np.round(probabilities[:50], 1)  # ties, including exact 0.5
    labels = (rng.random(200) < 0.3).astype(np.int64)
    assert roc_auc(probabilities, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, probabilities),
                                                           abs=1e-12)
    expected_f1 = sklearn_metrics.f1_score(labels, (probabilities > 0.5).astype(int))
    assert binary_f1(probabilities, labels) == pytest.approx(expected_f1, abs=1e-12)
    assert average_precision(probabilities, labels) == pytest.approx(
        sklearn_metrics.average_precision_score(labels, probabilities), abs=1e-12)
    result = heart_failure_metrics(torch.from_numpy(probabilities), torch.from_numpy(labels).bool(), threshold=0.3)
    assert result == pytest.approx({"auc": sklearn_metrics.roc_auc_score(labels, probabilities),
                                    "pr_auc": sklearn_metrics.average_precision_score(labels, probabilities),
                                    "f1": sklearn_metrics.f1_score(labels, (probabilities > 0.3).astype(int)),
                                    "f1_at_0.5": expected_f1})
    # Scores need not be probabilities for AUC.
    assert roc_auc(probabilities * 10 - 3, labels) == pytest.approx(roc_auc(probabilities, labels), abs=1e-12)


def test_heart_failure_hand_worked_and_errors():
    # Positive 0.4 beats 0.1 and ties 0.4 (1/2); positive 0.8 beats both: 3.5 / 4.
    assert roc_auc([0.1, 0.4, 0.4, 0.8], [0, 0, 1, 1]) == 0.875
    assert roc_auc([0.3, 0.3], [0, 1]) == 0.5
    # 0.5 itself is negative: tp 1 (0.9), fp 1 (0.6), fn 1 (0.5) -> 2 / 4.
    assert binary_f1([0.9, 0.6, 0.5, 0.1], [1, 0, 1, 0]) == 0.5
    assert binary_f1([0.1, 0.2], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="same length"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_f1([0.1, 1.5], [0, 1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        roc_auc([0.1, 0.2], [0, -1])
    with pytest.raises(ValueError, match="NaN"):
        heart_failure_metrics([0.1, float("nan")], [0, 1])


def test_f1_optimal_threshold_known_answers():
    # Low prevalence, every probability below 0.5: 0.5 flags nobody (F1 0); the two highest (0.3, 0.2) are the two
    # positives, so any threshold between 0.1 and 0.2 gives F1 1, and the midpoint is taken.
    probabilities, labels = [0.05, 0.1, 0.2, 0.3, 0.02, 0.08], [0, 0, 1, 1, 0, 0]
    assert binary_f1(probabilities, labels) == 0.0
    threshold = f1_optimal_threshold(probabilities, labels)
    assert threshold == pytest.approx(0.15) and binary_f1(probabilities, labels, threshold) == 1.0
    # The order of the patients does not matter.
    assert f1_optimal_threshold(probabilities[::-1], labels[::-1]) == threshold
    # Positives at 0.9, 0.6 and 0.4, a negative at 0.7: flagging {0.9} gives F1 2/4, {0.9, 0.7, 0.6} 4/6, all four
    # above 0.4 gives 6/7, everything (a negative at 0.1 too) 6/8: the best is between 0.1 and 0.4.
    assert f1_optimal_threshold([0.9, 0.7, 0.6, 0.4, 0.1], [1, 0, 1, 1, 0]) == pytest.approx(0.25)
    # Ties between sets: {0.8} gives 2/3 (one of two positives), {0.8, 0.6, 0.5, 0.4} gives 4/6 = 2/3 too (both
    # positives, two false alarms): the higher threshold (fewer patients flagged) wins.
    assert f1_optimal_threshold([0.8, 0.6, 0.5, 0.4, 0.2], [1, 0, 0, 1, 0]) == pytest.approx(0.7)
    # Tied scores move together: the two 0.6 patients are flagged or not as one.
    assert f1_optimal_threshold([0.6, 0.6, 0.3], [1, 0, 0]) == pytest.approx(0.45)
    # A perfect ranking separates the classes; every threshold chosen is a valid probability.
    rng = np.random.default_rng(0)
    scores = rng.random(100)
    labels = scores > 0.8
    threshold = f1_optimal_threshold(scores, labels)
    assert scores[~labels].max() < threshold < scores[labels].min() and binary_f1(scores, labels, threshold) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_f1_optimal_threshold_beats_every_other_threshold(seed):
    rng = np.random.default_rng(seed)
    probabilities = np.round(rng.random(60) * 0.4, 2)  # low scores with ties, as a low-prevalence model gives
    labels = (rng.random(60) < probabilities * 1.5).astype(np.int64)
    threshold = f1_optimal_threshold(probabilities, labels)
    grid = np.concatenate([np.linspace(0, 1, 1001), probabilities])
    best = max(binary_f1(probabilities, labels, t) for t in grid)
    assert binary_f1(probabilities, labels, threshold) == pytest.approx(best, abs=1e-12) and best > 0
    # Nothing higher gives the same F1 with other decisions.
    assert not [t for t in grid if t > threshold and binary_f1(probabilities, labels, t) == best
                and ((probabilities > t) != (probabilities > threshold)).any()]
    assert sklearn_metrics.f1_score(labels, probabilities > threshold) == pytest.approx(best, abs=1e-12)


def test_f1_optimal_threshold_degenerate_cases_fall_back_to_one_half():
    assert DEFAULT_THRESHOLD == 0.5
    assert f1_optimal_threshold([0.1, 0.3, 0.2], [0, 0, 0]) == 0.5  # no positive in validation
    assert f1_optimal_threshold([0.2, 0.2, 0.2], [0, 1, 0]) == 0.5  # constant scores: nothing ranked
    assert f1_optimal_threshold([0.7], [1]) == 0.5  # one patient
    assert f1_optimal_threshold([0.0, 0.0, 0.4], [1, 1, 0]) == 0.5  # positives at 0 can never be flagged
    # Only positives: flag everyone, below the lowest score.
    assert f1_optimal_threshold([0.3, 0.5], [1, 1]) == pytest.approx(0.15)
    # Two adjacent float64 scores: the threshold still separates them as `> threshold` decides.
    low = 0.25
    high = float(np.nextafter(low, 1))
    threshold = f1_optimal_threshold(np.array([low, high]), [0, 1])
    assert (high > threshold) and not (low > threshold)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        f1_optimal_threshold([0.2, 1.3], [0, 1])
    with pytest.raises(ValueError, match="same length"):
        f1_optimal_threshold([0.2, 0.3], [0, 1, 1])
    with pytest.raises(ValueError, match="at least one positive"):
        average_precision([0.2, 0.3], [0, 0])


@needs_evaluate
def test_evaluate_modules_match_the_functions():
    import evaluate

    scores, targets = _random_diagnosis(4)
    diagnosis = evaluate.load(evaluate_module_path("ehr_diagnosis"))
    assert diagnosis.compute(predictions=scores.tolist(), references=targets.tolist()) == pytest.approx(
        diagnosis_metrics(scores, targets))
    assert diagnosis.compute(predictions=SCORES, references=TARGETS, ks=(2,)) == pytest.approx(
        {"weighted_f1": 5 / 12, "recall_at_2": 7 / 18})

    rng = np.random.default_rng(5)
    probabilities, labels = rng.random(50), (rng.random(50) < 0.4).astype(np.int64)
    heart_failure = evaluate.load(evaluate_module_path("ehr_heart_failure"))
    assert heart_failure.compute(predictions=probabilities, references=labels) == pytest.approx(
        heart_failure_metrics(probabilities, labels))
    assert heart_failure.compute(predictions=probabilities, references=labels, threshold=0.2) == pytest.approx(
        heart_failure_metrics(probabilities, labels, threshold=0.2))
