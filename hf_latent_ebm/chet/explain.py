"""Which of a patient's codes drove a Chet prediction, by occlusion: score the patient again with each code removed
from every visit, and report how much the predicted score drops. It asks the model itself (no gradient or attention
heuristics), so it is exact for what it measures: the effect of that code's presence on this one prediction."""

from dataclasses import dataclass

import torch


@dataclass
class CodeAttribution:
    """
    Args:
        code (`str`): An input code (dotted ICD-9).
        visits (`list[int]`): The visits (0-based) that hold it.
        score_drop (`float`, *optional*): The target's score on the full input minus its score without this code;
            positive when the code raised the prediction. None when the code is the patient's only one, so that
            nothing is left to score without it.
        weight_to_target (`float`, *optional*): A[code, target] in the model's co-occurrence graph: the share of
            the code's co-occurrences (in the training visits) that are with the target; > 0 puts the target among
            the neighbours of a visit holding the code, whose embeddings Chet's graph layer mixes in.
        weight_from_target (`float`, *optional*): A[target, code]: the share of the target's co-occurrences that
            are with the code (> 0: the code is one of the target's neighbours). The graph is row-normalised and
            pruned per row, so the two differ. Both are None for a heart-failure model, which has no target code.
    """

    code: str
    visits: list[int]
    score_drop: float | None
    weight_to_target: float | None
    weight_from_target: float | None

    @property
    def is_neighbour(self) -> bool:
        """Whether the code and the target are linked in the disease graph, in either direction."""
        return bool(self.weight_to_target or self.weight_from_target)


def _check_visits(model, visits) -> list[list[str]]:
    """The visits as lists of distinct codes (a visit is a set to Chet); every code must be in the vocabulary."""
    if not visits or any(len(visit) == 0 for visit in visits):
        raise ValueError("a patient needs at least one visit, and every visit at least one code")
    vocabulary = set(model.config.code_names)
    unknown = sorted({code for visit in visits for code in visit} - vocabulary)
    if unknown:
        raise ValueError(f"codes outside the model's vocabulary: {', '.join(unknown)}; leave them out first")
    return [list(dict.fromkeys(visit)) for visit in visits]


def _target_column(model, code: str | None) -> int | None:
    if model.config.task == "heart_failure":
        if code is not None:
            raise ValueError("a heart-failure model predicts one probability; pass code=None")
        return None
    if code not in model.config.code_names:
        raise ValueError(f"{code!r} is not a code of the model's vocabulary")
    return model.config.code_names.index(code)


@torch.no_grad()
def occlusion_scores(model, visits: list[list[str]], removals: list[set[str]], code: str | None = None) -> list:
    """
    The target's score (the sigmoid score of `code` in the next visit for a diagnosis model, the heart-failure
    probability for a heart-failure one) with each set of codes in `removals` taken out of every visit; visits left
    empty are dropped, and a removal that leaves no visit gives None. All variants are scored in one batch.
    """
    import datasets

    visits = _check_visits(model, visits)
    column = _target_column(model, code)
    variants = []
    for removed in map(set, removals):
        variants.append([kept for visit in visits if (kept := [c for c in visit if c not in removed])])
    scorable = [index for index, variant in enumerate(variants) if variant]
    results = [None] * len(variants)
    if not scorable:
        return results
    records = datasets.Dataset.from_dict({"patient_id": scorable, "visits": [variants[i] for i in scorable]})
    scores, _ = model.predict(records)
    if column is not None:
        scores = scores[:, column]
    for index, score in zip(scorable, scores.tolist()):
        results[index] = score
    return results


def graph_weight(model, source: str, target: str) -> float:
    """A[source, target] of the model's co-occurrence graph (0 without an edge), found in its sorted edge keys."""
    names = model.config.code_names
    key = names.index(source) * model.config.num_codes + names.index(target)
    position = int(torch.searchsorted(model.graph_keys, torch.tensor(key, device=model.graph_keys.device)))
    if position < len(model.graph_keys) and int(model.graph_keys[position]) == key:
        return float(model.graph_weights[position])
    return 0.0


def code_attributions(model, visits: list[list[str]], code: str | None = None) -> list[CodeAttribution]:
    """
    Occlusion attributions of a prediction to each distinct input code: for a diagnosis model, of `code`'s score in
    the next visit; for a heart-failure model (`code=None`), of the heart-failure probability. `visits` are lists of
    dotted ICD-9 codes of the model's vocabulary. Rows come sorted by score drop, largest first (None last), each
    with the graph weights between the code and `code`.
    """
    visits = _check_visits(model, visits)
    inputs = list(dict.fromkeys(c for visit in visits for c in visit))
    scores = occlusion_scores(model, visits, [set()] + [{c} for c in inputs], code)
    full = scores[0]
    rows = [CodeAttribution(
        code=c, visits=[index for index, visit in enumerate(visits) if c in visit],
        score_drop=None if without is None else full - without,
        weight_to_target=None if code is None else graph_weight(model, c, code),
        weight_from_target=None if code is None else graph_weight(model, code, c))
        for c, without in zip(inputs, scores[1:])]
    return sorted(rows, key=lambda row: (row.score_drop is None, -(row.score_drop or 0.0)))


__all__ = ["CodeAttribution", "code_attributions", "occlusion_scores", "graph_weight"]
