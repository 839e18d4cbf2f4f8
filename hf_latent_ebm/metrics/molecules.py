"""The MOSES distribution metrics of generated molecules (Polykovskiy et al. 2020), on canonical SMILES, offline
(issue 35, item 3): validity, uniqueness@k, novelty against the training set and internal diversity with RDKit; the
Frechet ChemNet Distance with fcd_torch's shipped ChemNet; nearest-neighbour, fragment and scaffold similarity to a
reference set, which by default is the MOSES test set through the statistics the molsets package ships; and a plot of
property distributions."""

import functools
import math
import os
import tempfile
import warnings
from collections import Counter
from pathlib import Path

from ..data.molecules import PROPERTY_NAMES, canonical_smiles, molecule_properties, require_rdkit


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


# --- Distribution metrics against a reference set (MOSES's FCD, SNN, Frag and Scaf) ---

FCD_INSTALL = "pip install 'hf-latent-ebm[molecules]' (fcd_torch, with ChemNet's weights)"
# The generated-set properties that `plot_property_distributions` can draw, by the names of `PROPERTY_NAMES`.
PLOT_PROPERTIES = ("qed", "logp", "sa", "mol_weight")


def require_fcd():
    """fcd_torch's `FCD` class, or an ImportError naming the extra to install."""
    try:
        from fcd_torch import FCD
    except ImportError as error:
        raise ImportError(f"the Frechet ChemNet Distance needs fcd_torch: {FCD_INSTALL}") from error
    return FCD


@functools.lru_cache(maxsize=1)
def moses_test_statistics() -> dict:
    """
    MOSES's precomputed statistics of its test set (176,074 molecules), as shipped in the molsets package:
    {"FCD": {"mu", "sigma"} (ChemNet activations), "SNN": {"fps"} (Morgan r=2 1024-bit fingerprints, uint8 rows),
    "Frag": {"frag"} (BRICS fragment Counter), "Scaf": {"scaf"} (scaffold Counter), ...}. Loaded once (about a
    second and 200 MB, most of it the fingerprints) and kept. They were computed with an older RDKit: recomputed
    with the current one, about a dozen of the 16k fragment and of the 77k scaffold canonical forms (fused
    heteroaromatic rings) are spelled differently, which moves the test set's Frag and Scaf with itself by < 1e-6.
    """
    import numpy as np

    from ..data.molecules import require_moses_data

    try:
        folder = require_moses_data()
    except ImportError as error:
        raise ImportError(f"reference=None means the MOSES test set, whose statistics ship in the molsets package: "
                          f"{error}; or pass reference SMILES") from error
    # The statistics are a pickled dict inside the npz. Unpickling is acceptable here only because the file is data
    # of an installed package at a fixed path, never a file a user hands in.
    with np.load(folder / "test_stats.npz", allow_pickle=True) as archive:
        return archive["stats"].item()


def _valid_or_raise(smiles: list[str], what: str, at_least: int = 1) -> list[str]:
    """The canonical valid molecules of `smiles`, or a ValueError when fewer than `at_least` of them parse."""
    if isinstance(smiles, str):
        raise TypeError(f"{what} must be a list of SMILES strings, not one string")
    valid = canonical_valid(smiles)
    if len(valid) < at_least:
        raise ValueError(f"{what} needs at least {at_least} valid molecule{'s' if at_least > 1 else ''}, got "
                         f"{len(valid)} of {len(smiles)}")
    return valid


@functools.lru_cache(maxsize=2)
def _chemnet(device: str, batch_size: int):
    # Loading ChemNet takes about a second; the FCD object keeps it on the CPU between calls.
    return require_fcd()(device=device, n_jobs=1, batch_size=batch_size)


def frechet_chemnet_distance(generated: list[str], reference: list[str] | None = None, device: str = "cpu",
                             batch_size: int = 512) -> float:
    """
    The Frechet ChemNet Distance (Preuer et al. 2018) between the valid molecules of `generated` and `reference`
    (invalid ones dropped, duplicates kept, as MOSES does), with fcd_torch's ChemNet: the Frechet distance of
    Gaussians fitted to the penultimate-layer activations. `reference=None` is the MOSES test set, by its
    precomputed mean and covariance (MOSES's FCD/Test). Lower is better; identical sets give ~0. Each side needs at
    least two valid molecules (a covariance of one is undefined). FCD is biased upwards on small sets (below 512
    molecules, ChemNet's feature count, the covariance is singular), so compare FCDs of equally sized sets; MOSES
    uses 30,000.
    """
    generated = _valid_or_raise(generated, "FCD of generated molecules", at_least=2)
    if reference is not None:
        reference = _valid_or_raise(reference, "FCD of reference molecules", at_least=2)
    model = _chemnet(device, batch_size)
    with warnings.catch_warnings():
        # fcd_torch calls NumPy and SciPy APIs deprecated since it was written; the results are unaffected.
        warnings.simplefilter("ignore", DeprecationWarning)
        reference_stats = moses_test_statistics()["FCD"] if reference is None else _chemnet_statistics(model, reference)
        return float(model.metric(reference_stats, _chemnet_statistics(model, generated)))


def _chemnet_statistics(model, smiles: list[str]) -> dict:
    """The mean and covariance of ChemNet's activations over `smiles`, as fcd_torch's `precalc` computes them."""
    import numpy as np

    # fcd_torch's get_predictions keeps every batch's whole LSTM output alive until it returns (the activations it
    # collects are views of them), some 170 MB per thousand molecules: 176k MOSES molecules ran out of 24 GB. One
    # call per batch lets each go.
    step = model.batch_size
    activations = np.concatenate([model.get_predictions(smiles[start:start + step])
                                  for start in range(0, len(smiles), step)])
    return {"mu": activations.mean(0), "sigma": np.cov(activations.T)}


def morgan_fingerprints(smiles: list[str], radius: int = 2, num_bits: int = 1024):
    """The Morgan fingerprints (MOSES's radius 2, 1024 bits) of valid canonical `smiles`, as uint8 rows."""
    Chem = require_rdkit()
    import numpy as np
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=num_bits)
    return np.stack([generator.GetFingerprintAsNumPy(Chem.MolFromSmiles(text)).astype(np.uint8) for text in smiles])


def _max_tanimoto(queries, pool, chunk: int = 8192):
    """For each fingerprint row of `queries`, its largest Tanimoto similarity to a row of `pool` (0/1 arrays)."""
    import numpy as np

    # One matrix product per chunk of the pool: on the 176k MOSES test fingerprints about 3x faster than RDKit's
    # BulkTanimotoSimilarity per query, and the counts are exact in float32.
    queries = queries.astype(np.float32)
    query_bits = queries.sum(1, keepdims=True)
    best = np.zeros(len(queries))
    for start in range(0, len(pool), chunk):
        block = pool[start:start + chunk].astype(np.float32)
        shared = queries @ block.T
        union = query_bits + block.sum(1)[None, :] - shared
        # Two empty fingerprints count as identical (MOSES's convention); Morgan prints of a molecule are never empty.
        similarity = np.divide(shared, union, out=np.ones_like(shared), where=union > 0)
        best = np.maximum(best, similarity.max(1))
    return best


def nearest_neighbour_similarity(generated: list[str], reference: list[str] | None = None) -> float:
    """
    MOSES's SNN: the mean over the valid generated molecules (duplicates kept) of the largest Tanimoto similarity
    of its Morgan fingerprint (radius 2, 1024 bits) to one of the reference set's. In [0, 1], 1 when every generated
    molecule is in the reference. `reference=None` is the MOSES test set, by its precomputed fingerprints (SNN/Test;
    one call over its 176k molecules takes a few seconds per thousand generated).
    """
    queries = morgan_fingerprints(_valid_or_raise(generated, "SNN of generated molecules"))
    if reference is None:
        pool = moses_test_statistics()["SNN"]["fps"]
    else:
        pool = morgan_fingerprints(_valid_or_raise(reference, "SNN of reference molecules"))
    return float(_max_tanimoto(queries, pool).mean())


def _cosine_of_counts(first: Counter, second: Counter) -> float:
    """The cosine similarity of two count vectors given as {key: count}; NaN when either is empty (MOSES's too)."""
    if not first or not second:
        return math.nan
    dot = sum(count * second.get(key, 0) for key, count in first.items())
    norms = math.sqrt(sum(count**2 for count in first.values())) * math.sqrt(sum(c**2 for c in second.values()))
    return dot / norms


def brics_fragments(smiles: list[str]) -> Counter:
    """How often each BRICS fragment (the canonical SMILES of the pieces left by cutting every BRICS bond, attachment
    points as numbered dummy atoms) occurs over valid canonical `smiles`, as MOSES counts them."""
    Chem = require_rdkit()

    counts = Counter()
    for text in smiles:
        counts.update(Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(Chem.MolFromSmiles(text))).split("."))
    return counts


def murcko_scaffolds(smiles: list[str], min_rings: int = 2) -> Counter:
    """How often each Bemis-Murcko scaffold (canonical SMILES) with at least `min_rings` rings occurs over valid
    canonical `smiles`; as in MOSES, molecules with fewer rings (acyclic ones have none) count for no scaffold."""
    Chem = require_rdkit()
    from rdkit.Chem.Scaffolds import MurckoScaffold

    counts = Counter()
    for text in smiles:
        try:
            scaffold = MurckoScaffold.GetScaffoldForMol(Chem.MolFromSmiles(text))
        except (ValueError, RuntimeError):
            continue  # RDKit cannot cut some exotic molecules; MOSES counts them for no scaffold too
        form = Chem.MolToSmiles(scaffold)
        if form and scaffold.GetRingInfo().NumRings() >= min_rings:
            counts[form] += 1
    return counts


def fragment_similarity(generated: list[str], reference: list[str] | None = None) -> float:
    """
    MOSES's Frag: the cosine similarity of the BRICS fragment count vectors (see `brics_fragments`) of the valid
    generated and reference molecules, duplicates counted. In [0, 1]; 1 for sets with the same fragment frequencies.
    `reference=None` is the MOSES test set, by its precomputed counts (Frag/Test).
    """
    counts = brics_fragments(_valid_or_raise(generated, "Frag of generated molecules"))
    if reference is None:
        reference_counts = moses_test_statistics()["Frag"]["frag"]
    else:
        reference_counts = brics_fragments(_valid_or_raise(reference, "Frag of reference molecules"))
    return _cosine_of_counts(counts, reference_counts)


def scaffold_similarity(generated: list[str], reference: list[str] | None = None, min_rings: int = 2) -> float:
    """
    MOSES's Scaf: the cosine similarity of the Bemis-Murcko scaffold count vectors (see `murcko_scaffolds`, at least
    `min_rings` rings as in MOSES) of the valid generated and reference molecules. In [0, 1]; 0 when the two share no
    scaffold, NaN (as in MOSES) when either side has no scaffold of `min_rings` rings, e.g. only acyclic molecules.
    `reference=None` is the MOSES test set, by its precomputed counts (Scaf/Test, min_rings=2 only).
    """
    counts = murcko_scaffolds(_valid_or_raise(generated, "Scaf of generated molecules"), min_rings)
    if reference is None:
        if min_rings != 2:
            raise ValueError(f"the MOSES test set's scaffold counts are precomputed for min_rings=2, got {min_rings}; "
                             "pass reference SMILES for another value")
        reference_counts = moses_test_statistics()["Scaf"]["scaf"]
    else:
        reference_counts = murcko_scaffolds(_valid_or_raise(reference, "Scaf of reference molecules"), min_rings)
    return _cosine_of_counts(counts, reference_counts)


def molecule_metrics(smiles: list[str], training_smiles: list[str], ks=(1000, 10000),
                     reference_smiles: list[str] | None = None, fcd: bool = False, similarities: bool = False,
                     device: str = "cpu") -> dict[str, float]:
    """
    Validity, unique@k for each k that the valid molecules reach, novelty against `training_smiles` and IntDiv1 and
    IntDiv2; with `fcd=True` also "fcd" (`frechet_chemnet_distance`), with `similarities=True` also "snn", "frag"
    and "scaf" (`nearest_neighbour_similarity`, `fragment_similarity`, `scaffold_similarity`), each against
    `reference_smiles`, or the MOSES test set when that is None. ChemNet runs on `device`.
    """
    if reference_smiles is not None and not (fcd or similarities):
        raise ValueError("reference_smiles is only used by fcd=True or similarities=True; set one of them")
    valid_count = len(canonical_valid(smiles))
    results = {"validity": validity(smiles)}
    results.update({f"unique@{k}": uniqueness(smiles, k) for k in ks if valid_count >= k})
    results.update(novelty=novelty(smiles, training_smiles), intdiv1=internal_diversity(smiles, 1),
                   intdiv2=internal_diversity(smiles, 2))
    if fcd:
        results["fcd"] = frechet_chemnet_distance(smiles, reference_smiles, device=device)
    if similarities:
        results.update(snn=nearest_neighbour_similarity(smiles, reference_smiles),
                       frag=fragment_similarity(smiles, reference_smiles),
                       scaf=scaffold_similarity(smiles, reference_smiles))
    return results


_PROPERTY_LABELS = {"qed": "QED", "logp": "logP (Crippen)", "sa": "SA score", "penalized_logp": "penalized logP",
                    "mol_weight": "molecular weight (Da)"}


def plot_property_distributions(generated: list[str], training: list[str], path, properties=PLOT_PROPERTIES,
                                bins: int = 40) -> Path:
    """
    One PNG at `path` with a panel per property (names of `PROPERTY_NAMES`): the density histograms of the valid
    generated and training molecules over shared bins. Properties are computed here, SA and QED at a few thousand
    molecules a second, so pass a subset of a large training set. Written atomically; returns the path.
    """
    properties = tuple(properties)
    unknown = [name for name in properties if name not in PROPERTY_NAMES]
    if unknown or not properties:
        raise ValueError(f"unknown molecule properties {unknown or list(properties)}; known: {list(PROPERTY_NAMES)}")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"the plot is written as PNG; give a path ending in .png, got {str(path)!r}")
    generated = _valid_or_raise(generated, "plotting generated molecules")
    training = _valid_or_raise(training, "plotting training molecules")
    generated_values, training_values = molecule_properties(generated), molecule_properties(training)

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure on the Agg canvas draws off-screen without pyplot, so the caller's backend is left alone.
    figure = Figure(figsize=(4 * len(properties), 3.4))
    FigureCanvasAgg(figure)
    for axis, name in zip(figure.subplots(1, len(properties), squeeze=False)[0], properties):
        edges = np.histogram_bin_edges(training_values[name] + generated_values[name], bins=bins)
        axis.hist(training_values[name], bins=edges, density=True, alpha=0.45, label=f"training ({len(training)})")
        axis.hist(generated_values[name], bins=edges, density=True, histtype="step", linewidth=1.8,
                  label=f"generated ({len(generated)})")
        axis.set(xlabel=_PROPERTY_LABELS[name], ylabel="density")
    figure.axes[0].legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            figure.savefig(file, format="png", dpi=100)
        os.replace(staging, path)  # a reader never sees half a PNG
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return path


__all__ = ["canonical_valid", "validity", "uniqueness", "novelty", "internal_diversity", "molecule_metrics",
           "require_fcd", "moses_test_statistics", "frechet_chemnet_distance", "morgan_fingerprints",
           "nearest_neighbour_similarity", "brics_fragments", "murcko_scaffolds", "fragment_similarity",
           "scaffold_similarity", "plot_property_distributions", "PLOT_PROPERTIES"]
