"""Molecules as SMILES: canonical forms and RDKit properties, from a user's .smi / .csv file or the MOSES and QM9
benchmark sets, as `datasets.Dataset`s, and SELFIES as an alternative string form (issue 35, item 1). RDKit is the
`molecules` extra; everything here says so when it is missing."""

import csv
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

MOLECULES_EXTRA = "pip install 'hf-latent-ebm[molecules]' (RDKit)"
# The properties every molecule gets, by the names the property heads and the design loop use.
PROPERTY_NAMES = ("qed", "logp", "sa", "penalized_logp", "mol_weight")
SMILES_COLUMNS = ("SMILES", "smiles")  # the column a .csv file is read from unless one is named


def require_rdkit():
    """The `rdkit.Chem` module, or an ImportError naming the extra to install."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError as error:
        raise ImportError(f"molecules need RDKit: {MOLECULES_EXTRA}") from error
    RDLogger.DisableLog("rdApp.*")  # invalid SMILES are counted and reported, not printed one by one
    return Chem


def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES of `smiles`, or None when it does not parse to a molecule."""
    Chem = require_rdkit()
    molecule = Chem.MolFromSmiles(smiles) if smiles else None
    return None if molecule is None else Chem.MolToSmiles(molecule)


def _sa_scorer():
    import os
    import sys

    from rdkit import RDConfig

    # The SA score (Ertl & Schuffenhauer 2009) ships as an RDKit contribution, not a module of the package.
    path = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if path not in sys.path:
        sys.path.append(path)
    import sascorer

    return sascorer


def molecule_properties(smiles: list[str]) -> dict[str, list[float]]:
    """
    The `PROPERTY_NAMES` of each molecule (valid SMILES; a ValueError names one that is not):

    - qed: drug-likeness, RDKit's QED (Bickerton et al. 2012), in [0, 1];
    - logp: Crippen's octanol-water partition coefficient;
    - sa: synthetic accessibility (Ertl & Schuffenhauer 2009), 1 (easy) .. 10 (hard);
    - penalized_logp: logp - sa - max(0, largest ring size - 6), unnormalised (the JT-VAE objective without its
      ZINC standardisation);
    - mol_weight: molecular weight in daltons.
    """
    Chem = require_rdkit()
    from rdkit.Chem import QED, Crippen, Descriptors

    sascorer = _sa_scorer()
    values = {name: [] for name in PROPERTY_NAMES}
    for text in smiles:
        molecule = Chem.MolFromSmiles(text)
        if molecule is None:
            raise ValueError(f"not a valid molecule: {text!r}")
        logp, sa = Crippen.MolLogP(molecule), sascorer.calculateScore(molecule)
        largest_ring = max((len(ring) for ring in molecule.GetRingInfo().AtomRings()), default=0)
        values["qed"].append(QED.qed(molecule))
        values["logp"].append(logp)
        values["sa"].append(sa)
        values["penalized_logp"].append(logp - sa - max(0, largest_ring - 6))
        values["mol_weight"].append(Descriptors.MolWt(molecule))
    return values


def read_smiles_file(path, column: str | None = None) -> tuple[list[str], dict]:
    """
    The molecules of a .smi file (the first whitespace-separated field of each line) or a .csv file (`column`, by
    default "SMILES" or "smiles") as canonical SMILES, in file order, and a report: lines read, empty lines and
    invalid SMILES skipped (with up to five examples). Nothing is dropped silently; an unknown column or an
    unreadable file is a ValueError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no SMILES file at {str(path)!r}")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            name = column or next((candidate for candidate in SMILES_COLUMNS if candidate in columns), None)
            if name is None or name not in columns:
                raise ValueError(f"{str(path)!r} has no column {column or ' or '.join(SMILES_COLUMNS)!r}; its "
                                 f"columns are {columns}")
            raw = [(row.get(name) or "").strip() for row in reader]
    elif path.suffix.lower() in (".smi", ".txt"):
        if column is not None:
            raise ValueError(f"column={column!r} is for .csv files; {path.name} is read line by line")
        raw = [(line.split() or [""])[0] for line in path.read_text().splitlines()]
    else:
        raise ValueError(f"SMILES files are .smi, .txt or .csv, got {path.name!r}")
    molecules, report = _canonical_with_report(raw)
    return molecules, {"file": str(path), **report}


def _canonical_with_report(raw: list[str]) -> tuple[list[str], dict]:
    """The canonical SMILES of `raw` in order, empty and invalid entries skipped, and the counts of each."""
    molecules, invalid, empty = [], [], 0
    for text in raw:
        if not text:
            empty += 1
            continue
        canonical = canonical_smiles(text)
        if canonical is None:
            invalid.append(text)
        else:
            molecules.append(canonical)
    return molecules, {"lines": len(raw), "molecules": len(molecules), "empty_skipped": empty,
                       "invalid_skipped": len(invalid), "invalid_examples": invalid[:5]}


def property_summary(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean and std of each property (for reports and cards)."""
    summary = {}
    for name, column in values.items():
        mean = sum(column) / len(column) if column else math.nan
        std = math.sqrt(sum((value - mean) ** 2 for value in column) / len(column)) if column else math.nan
        summary[name] = {"mean": mean, "std": std}
    return summary


def _features():
    from datasets import Features, Value

    # Explicit, so that an empty dataset (every input invalid) still has float property columns.
    return Features({"smiles": Value("string"), **{name: Value("float64") for name in PROPERTY_NAMES}})


def _properties_dataset(molecules: list[str]):
    """A Dataset of already-canonical `molecules` with one column per property."""
    from datasets import Dataset

    return Dataset.from_dict({"smiles": molecules, **molecule_properties(molecules)}, features=_features())


def molecule_dataset(smiles: list[str], name: str | None = None) -> tuple["datasets.Dataset", dict]:
    """
    A `datasets.Dataset` of molecules: column "smiles" (RDKit canonical SMILES, in input order) and one float column
    per property of `PROPERTY_NAMES` (see `molecule_properties`). Empty and invalid inputs are skipped and counted
    in the report (lines, molecules, empty_skipped, invalid_skipped, invalid_examples, and `name` when given).
    """
    if isinstance(smiles, str):
        raise TypeError("smiles must be a list of SMILES strings, not one string")
    molecules, report = _canonical_with_report([(text or "").strip() for text in smiles])
    if name is not None:
        report = {"name": name, **report}
    return _properties_dataset(molecules), report


def load_smiles_dataset(path, column: str | None = None) -> tuple["datasets.Dataset", dict]:
    """A user's .smi / .txt / .csv file (see `read_smiles_file`) as a molecule dataset (see `molecule_dataset`) and
    the file's report. Not cached: the file may change between calls."""
    molecules, report = read_smiles_file(path, column)
    return _properties_dataset(molecules), report


# The benchmark sets ship as data files in PyPI packages whose code is not used: importing molsets fails with a
# current RDKit and its pin pomegranate==0.12.0 does not install, so both go in with --no-deps.
MOSES_INSTALL = "pip install --no-deps molsets==0.3.1"
QM9_INSTALL = "pip install --no-deps qm9pack==1.0.3"
MOSES_SPLITS = ("train", "test", "test_scaffolds")
QM9_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
CACHE_ENV = "HF_LATENT_EBM_CACHE"


def _package_data(package: str, folder: tuple[str, ...], files: tuple[str, ...], install: str, what: str) -> Path:
    import importlib.util

    # find_spec locates the package without importing it (importing moses fails with a current RDKit).
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        data = Path(location, *folder)
        if all((data / file).is_file() for file in files):
            return data
    found = f" (found {package} at {locations}, without {'/'.join(folder)}/{files[0]})" if locations else ""
    raise ImportError(f"the {what} data files are not installed{found}: {install} (its data files only)")


def require_moses_data() -> Path:
    """The folder of MOSES' train / test / test_scaffolds .csv.gz files (the `molsets` package), or an ImportError
    naming the install."""
    return _package_data("moses", ("dataset", "data"), tuple(f"{split}.csv.gz" for split in MOSES_SPLITS),
                         MOSES_INSTALL, "MOSES")


def require_qm9_data() -> Path:
    """The folder of QM9's qm9_part1..3.csv files (the `qm9pack` package), or an ImportError naming the install."""
    return _package_data("qm9pack", ("data",), QM9_FILES, QM9_INSTALL, "QM9")


def molecule_cache_dir() -> Path:
    """Where benchmark molecules with their properties are cached: $HF_LATENT_EBM_CACHE, else
    ~/.cache/hf_latent_ebm/molecules."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "hf_latent_ebm" / "molecules"


def _check_limit(limit):
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of molecules or None (all), got {limit!r}")


def _cached_dataset(name: str, limit: int | None, seed: int, read_smiles) -> "datasets.Dataset":
    """The cached parquet of `name` (limit, seed) if there is one; else read_smiles(), a seeded subset of `limit`
    of them, their properties, written to the cache atomically (so an interrupted run leaves no half file)."""
    from datasets import Dataset

    path = molecule_cache_dir() / (f"{name}-all.parquet" if limit is None else f"{name}-{limit}-seed{seed}.parquet")
    if path.is_file():
        import pyarrow.parquet

        return Dataset(pyarrow.parquet.read_table(path))
    smiles = read_smiles()
    if limit is not None:
        import numpy as np

        if limit > len(smiles):
            raise ValueError(f"limit={limit} is more than the {len(smiles)} molecules of {name}")
        # Drawn before computing properties, which for all 1.6M MOSES molecules take about half an hour.
        smiles = [smiles[i] for i in np.random.default_rng(seed).choice(len(smiles), size=limit, replace=False)]
    dataset, report = molecule_dataset(smiles, name=name)
    if report["empty_skipped"] or report["invalid_skipped"]:
        warnings.warn(f"{name}: skipped {report['empty_skipped']} empty and {report['invalid_skipped']} invalid "
                      f"SMILES, e.g. {report['invalid_examples']}", UserWarning, stacklevel=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        dataset.to_parquet(staging)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return dataset


def _smiles_column(path: Path) -> list[str]:
    import pandas as pd

    columns = list(pd.read_csv(path, nrows=0).columns)
    if "SMILES" not in columns:
        raise ValueError(f"{str(path)!r} has no column 'SMILES'; its columns are {columns}")
    return pd.read_csv(path, usecols=["SMILES"], dtype=str, keep_default_na=False)["SMILES"].tolist()


def load_moses(split: str = "train", limit: int | None = None, seed: int = 0) -> "datasets.Dataset":
    """
    The MOSES benchmark molecules (Polykovskiy et al. 2020) of `split` ("train": 1.58M, "test", "test_scaffolds")
    as a molecule dataset (see `molecule_dataset`), in file order, or a random subset of `limit` of them drawn with
    `numpy.random.default_rng(seed)` (in drawn order). Properties are computed once and cached as parquet under
    `molecule_cache_dir()`; needs `pip install --no-deps molsets==0.3.1`.
    """
    if split not in MOSES_SPLITS:
        raise ValueError(f"MOSES split must be one of {MOSES_SPLITS}, got {split!r}")
    _check_limit(limit)
    folder = require_moses_data()
    return _cached_dataset(f"moses-{split}", limit, seed, lambda: _smiles_column(folder / f"{split}.csv.gz"))


def load_qm9(limit: int | None = None, seed: int = 0) -> "datasets.Dataset":
    """
    The QM9 molecules (Ramakrishnan et al. 2014; 130,831 here) as a molecule dataset (see `molecule_dataset`), all or
    a seeded random subset of `limit`, cached as `load_moses` does; needs `pip install --no-deps qm9pack==1.0.3`.
    """
    _check_limit(limit)
    folder = require_qm9_data()
    return _cached_dataset("qm9", limit, seed, lambda: [text for file in QM9_FILES
                                                       for text in _smiles_column(folder / file)])


SELFIES_INSTALL = "pip install selfies"


def require_selfies():
    """The `selfies` module, or an ImportError naming the install."""
    try:
        import selfies
    except ImportError as error:
        raise ImportError(f"SELFIES strings need the selfies package: {SELFIES_INSTALL}") from error
    return selfies


def to_selfies(smiles: list[str]) -> list[str]:
    """The SELFIES string (Krenn et al. 2020) of each SMILES; a ValueError names one that cannot be encoded."""
    selfies = require_selfies()
    encoded = []
    for text in smiles:
        try:
            encoded.append(selfies.encoder(text))
        except selfies.EncoderError as error:
            raise ValueError(f"cannot encode {text!r} as SELFIES: {str(error).splitlines()[0]}") from error
    return encoded


def from_selfies(selfies_strings: list[str]) -> list[str | None]:
    """The SMILES of each SELFIES string, or None where it is not SELFIES (any valid SELFIES decodes to a molecule;
    the SMILES are the decoder's, not canonical)."""
    selfies = require_selfies()
    decoded = []
    for text in selfies_strings:
        try:
            decoded.append(selfies.decoder(text) or None)
        except selfies.DecoderError:
            decoded.append(None)
    return decoded


__all__ = ["MOLECULES_EXTRA", "PROPERTY_NAMES", "require_rdkit", "canonical_smiles", "molecule_properties",
           "read_smiles_file", "property_summary", "molecule_dataset", "load_smiles_dataset", "require_moses_data",
           "require_qm9_data", "molecule_cache_dir", "load_moses", "load_qm9", "MOSES_SPLITS", "require_selfies",
           "to_selfies", "from_selfies"]
