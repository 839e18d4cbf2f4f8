"""Chet's first pieces: ICD-9 code handling and the synthetic MIMIC-III-shaped CSVs."""

import pandas as pd
import pytest

from hf_latent_ebm.chet import dot_icd9, icd9_chapter, synthesize_mimic3
from hf_latent_ebm.chet.synthetic import DISEASE_CLUSTERS


def test_dotting_and_chapters():
    assert [dot_icd9(code) for code in ("4280", "V1582", "E8120", "486", "0389")] == \
        ["428.0", "V15.82", "E812.0", "486", "038.9"]
    assert icd9_chapter("4280") == icd9_chapter("428.0") == 6  # circulatory system
    assert icd9_chapter("V1582") == 17 and icd9_chapter("E8120") == 18 and icd9_chapter("0389") == 0
    for bad in ("42", "4280.1", "ABCD", "E81", "123456", "", 4280):
        with pytest.raises(ValueError):
            dot_icd9(bad)
    with pytest.raises(ValueError, match="no ICD-9-CM chapter"):
        icd9_chapter("V95")
    # Every code the generator uses is a valid code of some chapter.
    assert all(icd9_chapter(code) >= 0 for cluster in DISEASE_CLUSTERS.values() for code in cluster)


def test_synthetic_mimic3_has_the_schema_and_the_structure(tmp_path):
    folder = synthesize_mimic3(tmp_path / "a", num_patients=400, seed=0)
    admissions = pd.read_csv(folder / "ADMISSIONS.csv")
    diagnoses = pd.read_csv(folder / "DIAGNOSES_ICD.csv", dtype={"ICD9_CODE": str})
    assert list(admissions.columns) == ["ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME"]
    assert list(diagnoses.columns) == ["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"]
    assert admissions.HADM_ID.is_unique and set(diagnoses.HADM_ID) == set(admissions.HADM_ID)
    pd.to_datetime(admissions.ADMITTIME, format="%Y-%m-%d %H:%M:%S")  # MIMIC's time format
    per_visit = diagnoses.groupby("HADM_ID").size()
    assert per_visit.min() >= 5 and per_visit.max() <= 15
    visits = admissions.groupby("SUBJECT_ID").size()
    assert (visits == 1).any() and (visits >= 2).mean() > 0.9  # a few single-visit patients for the parser to drop
    # Codes recur across a patient's visits (persistent) and new ones emerge.
    ordered = admissions.sort_values(["SUBJECT_ID", "ADMITTIME"])
    codes = diagnoses.groupby("HADM_ID").ICD9_CODE.apply(set)
    repeated = emerging = 0
    for _, stay in ordered.groupby("SUBJECT_ID"):
        for before, after in zip(stay.HADM_ID.iloc[:-1], stay.HADM_ID.iloc[1:]):
            repeated += len(codes[after] & codes[before])
            emerging += len(codes[after] - codes[before])
    assert repeated > 0 and emerging > 0
    # Heart failure in a realistic share of the last visits of patients with two or more.
    last = ordered[ordered.SUBJECT_ID.isin(visits[visits >= 2].index)].groupby("SUBJECT_ID").tail(1)
    share = last.HADM_ID.map(lambda hadm: any(code.startswith("428") for code in codes[hadm])).mean()
    assert 0.1 < share < 0.4
    # Seeded: the same seed writes the same files, another seed others.
    again = synthesize_mimic3(tmp_path / "b", num_patients=400, seed=0)
    other = synthesize_mimic3(tmp_path / "c", num_patients=400, seed=1)
    assert (again / "DIAGNOSES_ICD.csv").read_text() == (folder / "DIAGNOSES_ICD.csv").read_text()
    assert (other / "DIAGNOSES_ICD.csv").read_text() != (folder / "DIAGNOSES_ICD.csv").read_text()
    with pytest.raises(ValueError):
        synthesize_mimic3(tmp_path / "d", num_patients=0)
