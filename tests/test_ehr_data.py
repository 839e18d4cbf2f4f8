"""The MIMIC-III / MIMIC-IV parsers: a synthetic round trip, every kind of bad input, and MIMIC-IV's ICD-10 map."""

import gzip
import shutil

import pandas as pd
import pytest

from hf_latent_ebm.chet import dot_icd9, synthesize_mimic3
from hf_latent_ebm.data.ehr import EHRDataReport, load_ehr, load_icd10_map, load_mimic3, load_mimic4


def write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, row)) for row in rows]) + "\n")
    return path


def mimic3(folder, admissions, diagnoses):
    """ADMISSIONS rows (subject, hadm, time) and DIAGNOSES rows (subject, hadm, code) in MIMIC-III's layout."""
    write(folder / "ADMISSIONS.csv", ["SUBJECT_ID", "HADM_ID", "ADMITTIME"], admissions)
    write(folder / "DIAGNOSES_ICD.csv", ["SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"],
          [(subject, hadm, seq, code) for seq, (subject, hadm, code) in enumerate(diagnoses, start=1)])
    return folder


# Two good patients: 1 (two visits) and 2 (two visits).
GOOD_ADMISSIONS = [(1, 10, "2101-01-01 00:00:00"), (1, 11, "2101-06-01 00:00:00"),
                   (2, 20, "2102-01-01 00:00:00"), (2, 21, "2102-03-01 12:30:00")]
GOOD_DIAGNOSES = [(1, 10, "4280"), (1, 11, "5849"), (2, 20, "486"), (2, 21, "V1582")]


def test_synthetic_round_trip_and_gzip(tmp_path):
    folder = synthesize_mimic3(tmp_path / "plain", num_patients=300, seed=0)
    dataset, report = load_mimic3(folder)
    assert isinstance(report, EHRDataReport)
    assert report.patients_read == 300 and report.patients_with_one_visit > 0
    assert report.patients_kept + report.patients_with_one_visit + report.patients_with_empty_visit == 300
    assert len(dataset) == report.patients_kept and report.visits_kept == sum(map(len, dataset["visits"]))
    assert dataset["patient_id"] == sorted(dataset["patient_id"])
    assert str(dataset.features["visits"]) == "List(List(Value('string')))"
    for row in dataset:
        assert len(row["visits"]) >= 2 and row["admit_times"] == sorted(row["admit_times"])
        assert all(len(set(visit)) == len(visit) > 0 for visit in row["visits"])
    codes = {code for row in dataset["visits"] for visit in row for code in visit}
    assert "428.0" in codes and all(code == dot_icd9(code.replace(".", "")) for code in codes)
    assert report.codes_kept == len(codes)
    # One patient recomputed directly with pandas.
    admissions = pd.read_csv(folder / "ADMISSIONS.csv")
    diagnoses = pd.read_csv(folder / "DIAGNOSES_ICD.csv", dtype={"ICD9_CODE": str})
    patient = dataset[5]
    stays = admissions[admissions.SUBJECT_ID == patient["patient_id"]].sort_values("ADMITTIME")
    assert patient["admission_ids"] == stays.HADM_ID.tolist() and patient["admit_times"] == stays.ADMITTIME.tolist()
    expected = [[dot_icd9(code) for code in diagnoses[diagnoses.HADM_ID == hadm].sort_values("SEQ_NUM").ICD9_CODE]
                for hadm in stays.HADM_ID]
    assert patient["visits"] == expected
    assert f"patients kept: {report.patients_kept}" in str(report) and "malformed" not in str(report)
    assert report.to_dict()["patients_kept"] == report.patients_kept
    # The same files gzipped give the identical dataset.
    zipped = tmp_path / "gz"
    zipped.mkdir()
    for name in ("ADMISSIONS.csv", "DIAGNOSES_ICD.csv"):
        with open(folder / name, "rb") as source, gzip.open(zipped / f"{name}.gz", "wb") as target:
            shutil.copyfileobj(source, target)
    again, again_report = load_ehr(mimic3=zipped)
    assert again.to_dict() == dataset.to_dict() and again_report == report


def test_bad_rows_and_codes_are_counted_and_skipped(tmp_path):
    admissions = GOOD_ADMISSIONS + [(1, 12, "not a time"), ("x", 13, "2101-01-01 00:00:00"), (3, "", "")]
    diagnoses = GOOD_DIAGNOSES + [
        (1, 10, "428.0"), (1, 10, "42832"), (1, 10, "428.32"),  # dotted input; the same code twice -> collapsed
        (1, 11, "ABC"), (1, 11, "42.80"), (1, 11, "V95"),  # two invalid strings, one outside every chapter
        (2, 20, ""), (2.5, 20, "486"),  # malformed: empty code, non-integer id
        (2, 99, "486"), (1, 20, "486")]  # no such admission; an admission of another subject
    dataset, report = load_mimic3(mimic3(tmp_path, admissions, diagnoses))
    assert dataset["visits"] == [[["428.0", "428.32"], ["584.9"]], [["486"], ["V15.82"]]]
    assert report.malformed_rows == 5 and report.invalid_codes == 2 and report.codes_outside_chapters == 1
    assert report.duplicate_diagnoses == 2 and report.diagnoses_without_admission == 2
    assert report.admissions_read == 7 and report.diagnosis_rows_read == len(diagnoses)
    assert "malformed rows: 5" in str(report)


def test_order_empty_visits_and_single_visits(tmp_path):
    admissions = [(1, 11, "2101-06-01 00:00:00"), (1, 10, "2101-01-01 00:00:00"),  # out of order
                  (2, 20, "2102-01-01 00:00:00"), (2, 21, "2102-03-01 00:00:00"),
                  (3, 30, "2103-01-01 00:00:00"), (3, 31, "2103-02-01 00:00:00"), (3, 32, "2103-03-01 00:00:00"),
                  (4, 40, "2104-01-01 00:00:00")]
    diagnoses = [(1, 10, "4280"), (1, 11, "5849"), (2, 20, "486"), (2, 21, "486"), (3, 30, "486"), (3, 32, "486"),
                 (4, 40, "486")]  # admission 31 has no codes: patient 3 goes; patient 4 has one visit
    dataset, report = load_mimic3(mimic3(tmp_path, admissions, diagnoses))
    assert dataset["patient_id"] == [1, 2] and dataset["admission_ids"][0] == [10, 11]
    assert dataset["admit_times"][0] == ["2101-01-01 00:00:00", "2101-06-01 00:00:00"]
    assert report.admissions_out_of_order == 1 and report.visits_without_codes == 1
    assert report.patients_with_empty_visit == 1 and report.patients_with_one_visit == 1
    assert (report.patients_kept, report.visits_kept, report.codes_kept) == (2, 4, 3)


def test_user_mistakes_raise_clear_errors(tmp_path):
    folder = mimic3(tmp_path / "dup", GOOD_ADMISSIONS + [(3, 10, "2103-01-01 00:00:00")], GOOD_DIAGNOSES)
    with pytest.raises(ValueError, match="duplicate admission id.*HADM_ID 10"):
        load_mimic3(folder)
    folder = mimic3(tmp_path / "col", GOOD_ADMISSIONS, GOOD_DIAGNOSES)
    write(folder / "ADMISSIONS.csv", ["SUBJECT_ID", "HADM_ID", "DISCHTIME"], GOOD_ADMISSIONS)
    with pytest.raises(ValueError, match="ADMISSIONS.csv lacks the column.*ADMITTIME.*found SUBJECT_ID"):
        load_mimic3(folder)
    folder = mimic3(tmp_path / "empty", GOOD_ADMISSIONS[:1] + GOOD_ADMISSIONS[2:3], GOOD_DIAGNOSES)
    with pytest.raises(ValueError, match="(?s)no patient with two or more.*patients with one visit: 2"):
        load_mimic3(folder)
    with pytest.raises(FileNotFoundError, match="DIAGNOSES_ICD.csv"):
        write(tmp_path / "missing" / "ADMISSIONS.csv", ["SUBJECT_ID"], [])
        load_mimic3(tmp_path / "missing")
    with pytest.raises(ValueError, match="exactly one"):
        load_ehr()
    with pytest.raises(ValueError, match="exactly one"):
        load_ehr(mimic3=tmp_path, mimic4=tmp_path)
    with pytest.raises(ValueError, match="max_patients"):
        load_mimic3(mimic3(tmp_path / "ok", GOOD_ADMISSIONS, GOOD_DIAGNOSES), max_patients=0)


def mimic4(folder):
    """Patient 1: shifted anchor 2150 = real 2014, admissions in real 2012 (dropped by year), 2014, 2015. Patient 2:
    real 2017-2019, ICD-10 codes only. Patient 3: one ICD-9 and one NoDx-only ICD-10 visit."""
    write(folder / "patients.csv", ["subject_id", "anchor_year", "anchor_year_group"],
          [(1, 2150, "2014 - 2016"), (2, 2180, "2017 - 2019"), (3, 2120, "2014 - 2016")])
    write(folder / "admissions.csv", ["subject_id", "hadm_id", "admittime"],
          [(1, 10, "2148-05-01 10:00:00"), (1, 11, "2150-01-01 00:00:00"), (1, 12, "2151-02-01 00:00:00"),
           (2, 20, "2180-01-01 00:00:00"), (2, 21, "2181-01-01 00:00:00"),
           (3, 30, "2120-01-01 00:00:00"), (3, 31, "2120-05-01 00:00:00")])
    write(folder / "diagnoses_icd.csv", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
          [(1, 10, 1, "4280", 9), (1, 11, 1, "4280", 9), (1, 11, 2, "I5020", 10), (1, 12, 1, "N179", 10),
           (2, 20, 1, "I5020", 10), (2, 21, 2, "J18.9", 10), (2, 21, 1, "N179", 10),
           (3, 30, 1, "486", 9), (3, 31, 1, "R6889", 10)])
    return folder


def test_icd10_maps_in_both_layouts(tmp_path):
    gems = tmp_path / "2018_I10gem.txt.gz"
    with gzip.open(gems, "wt") as handle:
        handle.write("I5020     4280      10000\nI5020     4289      10000\nN179      5849      10000\n"
                     "J189      486       10000\nR6889     NoDx      11000\nZ0000     V700      01000\n")
    assert load_icd10_map(gems) == {"I5020": "4280", "N179": "5849", "J189": "486"}  # first target kept
    table = write(tmp_path / "icd10-icd9.csv", ["ICD10", "ICD9"], [("I50.20", "428.0"), ("N179", "5849"),
                                                                   ("J189", "486"), ("R6889", "NoDx")])
    assert load_icd10_map(table) == load_icd10_map(gems)
    write(tmp_path / "bad.txt", ["I5020 4280 10000"], [("N179 5849",)])
    with pytest.raises(ValueError, match="line 2"):
        load_icd10_map(tmp_path / "bad.txt")
    write(tmp_path / "none.txt", ["R6889 NoDx 11000"], [])
    with pytest.raises(ValueError, match="no usable"):
        load_icd10_map(tmp_path / "none.txt")


def test_mimic4_years_mapping_and_sampling(tmp_path):
    folder = mimic4(tmp_path / "m4")
    table = write(tmp_path / "map.csv", ["ICD10", "ICD9"], [("I50.20", "428.0"), ("N179", "5849"), ("J189", "486"),
                                                            ("R6889", "NoDx")])
    dataset, report = load_mimic4(folder, icd10_map=table)
    assert dataset["patient_id"] == [1, 2] and dataset["admission_ids"] == [[11, 12], [20, 21]]
    assert dataset["visits"] == [[["428.0"], ["584.9"]], [["428.0"], ["584.9", "486"]]]  # seq_num order
    assert report.admissions_outside_years == 1 and report.duplicate_diagnoses == 1 and report.unmapped_icd10 == 1
    assert report.patients_with_empty_visit == 1 and report.patients_kept == 2
    same, _ = load_ehr(mimic4=folder, icd10_map={"I5020": "4280", "N17.9": "584.9", "J189": "486"})
    assert same.to_dict() == dataset.to_dict()
    everything, report = load_mimic4(folder, icd10_map=table, min_year=None)
    assert everything["admission_ids"][0] == [10, 11, 12] and report.admissions_outside_years == 0
    # Without a map only ICD-9 rows remain; patient 1 keeps one coded visit of two, so nobody is left.
    with pytest.raises(ValueError, match="(?s)need a map.*unmapped icd10: 6"):
        load_mimic4(folder)
    # Seeded sampling: the same seed picks the same patients.
    picks = {tuple(load_mimic4(folder, icd10_map=table, min_year=None, max_patients=1, seed=seed)[0]["patient_id"])
             for seed in range(8)}
    assert picks == {(1,), (2,)}
    first, report = load_mimic4(folder, icd10_map=table, max_patients=1, seed=3)
    assert first.to_dict() == load_mimic4(folder, icd10_map=table, max_patients=1, seed=3)[0].to_dict()
    assert report.patients_not_sampled == 1 and report.patients_kept == 1
    with pytest.raises(FileNotFoundError, match="admissions.csv"):
        load_ehr(mimic4=tmp_path / "nowhere")
