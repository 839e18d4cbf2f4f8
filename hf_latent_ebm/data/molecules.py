"""Molecules as SMILES: canonical forms and RDKit properties, from a user's .smi / .csv file (issue 35, item 1). RDKit
is the `molecules` extra; everything here says so when it is missing."""

import csv
import math
from pathlib import Path

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
    report = {"file": str(path), "lines": len(raw), "molecules": len(molecules), "empty_skipped": empty,
              "invalid_skipped": len(invalid), "invalid_examples": invalid[:5]}
    return molecules, report


def property_summary(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean and std of each property (for reports and cards)."""
    summary = {}
    for name, column in values.items():
        mean = sum(column) / len(column) if column else math.nan
        std = math.sqrt(sum((value - mean) ** 2 for value in column) / len(column)) if column else math.nan
        summary[name] = {"mean": mean, "std": std}
    return summary


__all__ = ["MOLECULES_EXTRA", "PROPERTY_NAMES", "require_rdkit", "canonical_smiles", "molecule_properties",
           "read_smiles_file", "property_summary"]
