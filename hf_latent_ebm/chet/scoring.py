"""Batched scoring of a health event predictor over a packed cohort: what `predict` and the trainer both need, kept
below both (it imports nothing of the package)."""

import itertools

import torch


@torch.no_grad()
def predict_scores(model, cohort, batch_size: int = 256) -> torch.Tensor:
    """Sigmoid scores of a predictor for every patient of a `PackedCohort`: (patients, codes) or (patients,)."""
    was_training = model.training
    model.eval()
    device = next(itertools.chain(model.parameters(), model.buffers())).device
    scores = []
    for start in range(0, len(cohort), batch_size):  # batches of patients, each one vectorised call
        batch = cohort.batch(torch.arange(start, min(start + batch_size, len(cohort))))
        scores.append(torch.sigmoid(model(**{k: v.to(device) for k, v in batch.items()}).logits).cpu())
    model.train(was_training)
    return torch.cat(scores)


__all__ = ["predict_scores"]
