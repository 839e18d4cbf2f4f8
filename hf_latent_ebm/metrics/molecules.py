"""The MOSES distribution metrics of generated molecules (Polykovskiy et al. 2020), on canonical SMILES, offline
with RDKit (issue 35, item 3): validity, uniqueness@k, novelty against the training set and internal diversity."""

from ..data.molecules import canonical_smiles, require_rdkit


def canonical_valid(smiles: list[str]) -> list[str]:
    """The canonical forms of the valid molecules among `smiles`, in order (invalid ones dropped)."""
    forms = (canonical_smiles(text) for text in smiles)
    return [form for form in forms if form is not None]


def validity(smiles: list[str]) -> float:
    """The share of `smiles` that parse to a molecule (an empty string does not)."""
    if not smiles:
        raise ValueError("validity of zero molecules is undefined")
    return len(canonical_valid(smiles)) / len(smiles)


def uniqueness(smiles: list[str], k: int | None = None) -> float:
    """The share of distinct canonical forms among the first `k` valid molecules (all valid ones when `k` is None),
    MOSES's unique@k; a ValueError when fewer than `k` are valid, rather than a figure over fewer molecules."""
    valid = canonical_valid(smiles)
    if k is not None and len(valid) < k:
        raise ValueError(f"unique@{k} needs {k} valid molecules, got {len(valid)} (generate more)")
    chosen = valid[:k] if k is not None else valid
    if not chosen:
        raise ValueError("uniqueness of zero valid molecules is undefined")
    return len(set(chosen)) / len(chosen)


def novelty(smiles: list[str], training_smiles: list[str]) -> float:
    """The share of the distinct valid generated molecules whose canonical form is not in the training set (itself
    compared in canonical form)."""
    generated = set(canonical_valid(smiles))
    if not generated:
        raise ValueError("novelty of zero valid molecules is undefined")
    return len(generated - set(canonical_valid(training_smiles))) / len(generated)


def internal_diversity(smiles: list[str], p: int = 1, radius: int = 2, num_bits: int = 1024) -> float:
    """MOSES's IntDiv_p: 1 - (mean over all ordered pairs, a molecule with itself included, of T^p)^(1/p), T the
    Tanimoto similarity of Morgan fingerprints (radius 2, 1024 bits), over the valid molecules."""
    require_rdkit()
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    valid = canonical_valid(smiles)
    if not valid:
        raise ValueError("internal diversity of zero valid molecules is undefined")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=num_bits)
    prints = [generator.GetFingerprint(Chem.MolFromSmiles(text)) for text in valid]
    total = sum(sum(value**p for value in DataStructs.BulkTanimotoSimilarity(fingerprint, prints))
                for fingerprint in prints)
    return 1 - (total / len(prints) ** 2) ** (1 / p)


def molecule_metrics(smiles: list[str], training_smiles: list[str], ks=(1000, 10000)) -> dict[str, float]:
    """Validity, unique@k for each k that the valid molecules reach, novelty and IntDiv1 and IntDiv2."""
    valid_count = len(canonical_valid(smiles))
    results = {"validity": validity(smiles)}
    results.update({f"unique@{k}": uniqueness(smiles, k) for k in ks if valid_count >= k})
    results.update(novelty=novelty(smiles, training_smiles), intdiv1=internal_diversity(smiles, 1),
                   intdiv2=internal_diversity(smiles, 2))
    return results


__all__ = ["canonical_valid", "validity", "uniqueness", "novelty", "internal_diversity", "molecule_metrics"]
