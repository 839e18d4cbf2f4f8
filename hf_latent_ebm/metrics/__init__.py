"""Quality metrics. Each is a plain torch function here and a local `evaluate` module under `evaluate_modules/`."""

from .anomaly import auprc
from .coherence import (ModalityClassifiers, cross_coherence, cross_modal_diversity, joint_agreement, joint_coherence,
                        mean_pairwise_distance)
from .ehr import (average_precision, binary_f1, diagnosis_metrics, f1_optimal_threshold, heart_failure_metrics,
                  recall_at_k, roc_auc, top_k_weighted_f1)
from .fid import StreamingFID, fid, frechet_distance, inception_features

__all__ = ["fid", "StreamingFID", "frechet_distance", "inception_features", "auprc", "joint_coherence", "cross_coherence",
           "cross_modal_diversity", "mean_pairwise_distance",
           "joint_agreement", "ModalityClassifiers", "top_k_weighted_f1", "recall_at_k", "diagnosis_metrics", "roc_auc",
           "binary_f1", "heart_failure_metrics", "f1_optimal_threshold", "average_precision", "evaluate_module_path"]


def evaluate_module_path(name: str) -> str:
    """Path of a packaged `evaluate` module, for `evaluate.load(evaluate_module_path("fid"))` (works offline)."""
    from pathlib import Path

    path = Path(__file__).parent / "evaluate_modules" / name / f"{name}.py"
    if not path.exists():
        available = sorted(p.name for p in path.parent.parent.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise ValueError(f"no packaged evaluate module {name!r}; available: {available}")
    return str(path)
