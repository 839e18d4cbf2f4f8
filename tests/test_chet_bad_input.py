"""Bad input to the `ehr` commands, as a new user gives it: ICD-10 codes in MIMIC-III files, a model folder of
another kind, broken `--config-overrides`. Each is refused before any training, with an error that says what came,
what was expected and which flag fixes it."""

import json

import pytest
from transformers import AutoConfig

from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.data.ehr import load_ehr, load_mimic3, looks_like_icd10

from .test_ehr_data import write

# ICD-10-CM codes with their ICD-9-CM equivalents; E11.9 and E78.5 also read as (nonexistent) ICD-9 E codes.
ICD10_TO_ICD9 = {"I5020": "4280", "N179": "5849", "J189": "486", "E119": "25000", "E785": "2724", "I10": "4019",
                 "K219": "53081", "F329": "311", "Z794": "V5867", "I4891": "42731", "D649": "2859", "N390": "5990"}


def icd10_mimic3(folder, codes=tuple(ICD10_TO_ICD9), patients=30):
    """MIMIC-III-shaped files whose ICD9_CODE column holds ICD-10-CM codes: three visits per patient."""
    admissions, diagnoses = [], []
    for subject in range(1, patients + 1):
        for visit in range(3):
            hadm = subject * 10 + visit
            admissions.append((subject, hadm, f"21{subject:02d}-0{visit + 1}-01 00:00:00"))
            diagnoses += [(subject, hadm, seq + 1, codes[(subject + visit + seq) % len(codes)]) for seq in range(3)]
    write(folder / "ADMISSIONS.csv", ["SUBJECT_ID", "HADM_ID", "ADMITTIME"], admissions)
    write(folder / "DIAGNOSES_ICD.csv", ["SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"], diagnoses)
    return folder


def error_of(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        cli_main(argv)
    return capsys.readouterr().err


def test_icd10_shape():
    assert all(map(looks_like_icd10, ("I5020", "I50.20", "N17.9", "Z794", "V4352XA", "e119", "U071")))
    assert not any(map(looks_like_icd10, ("4280", "428.0", "42.80", "XYZ", "I50.2.0", "")))


def test_icd10_codes_as_mimic3_are_refused_before_training(tmp_path, capsys):
    folder = icd10_mimic3(tmp_path / "icd10")
    # Only the two codes that also read as ICD-9 E codes survive: refused before the first epoch, not by recall@10.
    err = error_of(["ehr", "train", "--mimic3", str(folder), "--output-dir", str(tmp_path / "run")], capsys)
    assert "only 2 distinct codes" in err and "recall@k" in err and "at least 20" in err
    assert "look like ICD-10-CM" in err and "--icd10-map" in err and "k must be an int" not in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "training_history.json").exists()
    # Heart failure: no 428.x code survives.
    err = error_of(["ehr", "train", "--mimic3", str(folder), "--task", "heart_failure", "--output-dir",
                    str(tmp_path / "hf")], capsys)
    assert "no heart-failure code" in err and "--icd10-map" in err
    # Codes of which none reads as ICD-9: the loader itself says so.
    folder = icd10_mimic3(tmp_path / "none", codes=("I5020", "N179", "J189", "I10"))
    err = error_of(["ehr", "train", "--mimic3", str(folder), "--output-dir", str(tmp_path / "x")], capsys)
    assert "no patient with two or more" in err and "look like ICD-10-CM" in err and "--icd10-map" in err


def test_icd10_map_applies_to_mimic3(tmp_path):
    folder = icd10_mimic3(tmp_path / "icd10")
    plain, report = load_mimic3(folder)
    assert report.codes_like_icd10 == report.invalid_codes > 0 and report.unmapped_icd10 == 0
    assert {code for visits in plain["visits"] for visit in visits for code in visit} == {"E119", "E785"}
    mapped, report = load_ehr(mimic3=folder, icd10_map=ICD10_TO_ICD9)
    assert report.codes_like_icd10 == report.invalid_codes == report.unmapped_icd10 == 0
    assert {code for visits in mapped["visits"] for visit in visits for code in visit} == \
        {"428.0", "584.9", "486", "250.00", "272.4", "401.9", "530.81", "311", "V58.67", "427.31", "285.9", "599.0"}
    _, partial = load_mimic3(folder, icd10_map={"I50.20": "428.0", "N179": "5849"})
    assert 0 < partial.unmapped_icd10 < partial.diagnosis_rows_read
    table = write(tmp_path / "map.csv", ["ICD10", "ICD9"], list(ICD10_TO_ICD9.items()))
    assert load_mimic3(folder, icd10_map=table)[0]["visits"] == mapped["visits"]


def test_predict_refuses_a_model_of_another_kind(tmp_path, capsys):
    data = icd10_mimic3(tmp_path / "data")
    AutoConfig.for_model("latent_ebm").save_pretrained(tmp_path / "image-model")
    err = error_of(["ehr", "predict", "--model", str(tmp_path / "image-model"), "--mimic3", str(data)], capsys)
    assert "type 'latent_ebm'" in err and "not a Chet model" in err and "model_type 'chet'" in err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    err = error_of(["ehr", "predict", "--model", str(tmp_path / "broken"), "--mimic3", str(data)], capsys)
    assert "not a readable JSON config" in err


@pytest.mark.parametrize("command", [["ehr", "train", "--synthetic", "--patients", "20"], ["train", "--task", "image"]])
def test_bad_config_overrides_name_the_flag(tmp_path, capsys, command):
    for text, message in (('{"dropout": 0.2', "Expecting ',' delimiter"), ("dropout=0.2", "Expecting value"),
                          ('[{"dropout": 0.2}]', "got a list")):
        err = error_of([*command, "--output-dir", str(tmp_path / "run"), "--config-overrides", text], capsys)
        assert "--config-overrides must be a JSON object" in err and message in err and repr(text) in err
    assert not (tmp_path / "run" / "synthetic-data").exists()  # refused before the data is made


def test_unknown_chet_override_is_refused(tmp_path, capsys):
    err = error_of(["ehr", "train", "--synthetic", "--patients", "60", "--output-dir", str(tmp_path / "run"),
                    "--config-overrides", '{"hiden_dim": 16}'], capsys)
    assert "'hiden_dim' is not a ChetConfig field" in err and "hidden_dim" in err
