"""Class priors under label shift: a classifier trained on balanced labelled rows predicts with the labelled rows'
class frequencies as its prior, while the population (the unlabelled rows) may be 86 : 14. Saerens, Latinne &
Decaestecker (2002) estimate the population's priors by EM on the classifier's own posteriors over unlabelled rows
and re-weight the posteriors to them; for two classes this moves the decision threshold and leaves any ranking
metric (AUPRC, AUC) unchanged."""

import torch


def check_priors(priors, num_labels: int, name: str) -> torch.Tensor:
    """`priors` as a float64 tensor of `num_labels` positive values summing to 1, or a ValueError saying what came."""
    values = torch.as_tensor(priors, dtype=torch.float64)
    if values.shape != (num_labels,) or not bool((values > 0).all()) or abs(float(values.sum()) - 1) > 1e-6:
        raise ValueError(f"{name} must be {num_labels} positive class frequencies summing to 1, got "
                         f"{values.tolist()}")
    return values


def shift_to_priors(probabilities: torch.Tensor, training_priors, priors) -> torch.Tensor:
    """p(y | x) of a classifier trained under `training_priors`, re-weighted to a population with `priors`:
    p'(y | x) = p(y | x) priors_y / training_priors_y, normalised (Bayes' rule with the likelihood p(x | y) kept)."""
    num_labels = probabilities.shape[1]
    weights = (check_priors(priors, num_labels, "priors")
               / check_priors(training_priors, num_labels, "training_priors")).to(probabilities)
    shifted = probabilities * weights
    return shifted / shifted.sum(dim=1, keepdim=True)


def estimate_class_priors(probabilities: torch.Tensor, training_priors, max_iterations: int = 1000,
                          tolerance: float = 1e-8) -> torch.Tensor:
    """
    The population's class priors by EM (Saerens et al. 2002): alternately re-weight the posteriors on unlabelled
    rows to the current priors (E step) and set the priors to the mean re-weighted posterior (M step), from the
    training priors. It maximises the likelihood of the unlabelled rows over the priors with p(x | y) held fixed.

    Args:
        probabilities (`torch.Tensor` of shape `(num_rows, num_labels)`): The classifier's p(y | x) on unlabelled
            rows of the population.
        training_priors: The class frequencies the classifier was trained with (its labelled rows').
        max_iterations (`int`, defaults to 1000), tolerance (`float`, defaults to 1e-8): When EM stops.

    Returns:
        `torch.Tensor` of shape `(num_labels,)`, float64, summing to 1.
    """
    if probabilities.dim() != 2 or len(probabilities) == 0:
        raise ValueError(f"probabilities must be a non-empty (rows, classes) tensor, got {tuple(probabilities.shape)}")
    probabilities = probabilities.double()
    priors = check_priors(training_priors, probabilities.shape[1], "training_priors")
    for _ in range(max_iterations):
        updated = shift_to_priors(probabilities, training_priors, priors).mean(dim=0)
        # A class no row supports would reach prior 0, where the re-weighting is undefined; keep it tiny instead.
        updated = updated.clamp_min(1e-12) / updated.clamp_min(1e-12).sum()
        converged = float((updated - priors).abs().max()) < tolerance
        priors = updated
        if converged:
            break
    return priors


__all__ = ["estimate_class_priors", "shift_to_priors", "check_priors"]
