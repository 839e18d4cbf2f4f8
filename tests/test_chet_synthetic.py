"""The `mimic3` generator profile: MIMIC-III's published cohort statistics come out of it, measured."""

import pytest

from hf_latent_ebm.chet import synthesize_mimic3
from hf_latent_ebm.chet.synthetic import MIMIC3_TARGETS, cohort_statistics
from hf_latent_ebm.data.ehr import load_mimic3

# Three standard errors at 500 patients (about 1,300 visits): visit counts have a standard deviation near 1.05,
# code counts near 7, the heart-failure share is a binomial proportion near 0.3; recurrence pools ~8,000 codes.
TOLERANCE = {"visits_per_patient": 0.15, "codes_per_visit": 0.6, "recurrence": 0.03, "heart_failure": 0.06}


def test_cohort_statistics_on_a_hand_made_cohort():
    records = [{"visits": [["428.0", "401.9"], ["428.0", "584.9", "038.9"]]},
               {"visits": [["250.00"], ["250.00"], ["486"]]},
               {"visits": [["486"]]}]  # one visit: not in Chet's cohort, not counted
    statistics = cohort_statistics(records)
    assert statistics["patients"] == 2 and statistics["visits_per_patient"] == 2.5
    assert statistics["codes_per_visit"] == pytest.approx(8 / 5)
    assert statistics["recurrence"] == pytest.approx(2 / 4)  # 428.0 of 2, then 250.00 of 1, then 0 of 1
    assert statistics["heart_failure"] == 0.5 and statistics["distinct_codes"] == 6
    with pytest.raises(ValueError, match="two or more visits"):
        cohort_statistics(records[2:])


def test_mimic3_profile_meets_its_published_targets(tmp_path):
    folder = synthesize_mimic3(tmp_path / "a", num_patients=500, seed=0, profile="mimic3")
    records, report = load_mimic3(folder)
    statistics = cohort_statistics(records)
    assert statistics["patients"] == len(records) == 500  # every patient has two or more admissions
    for name, target in MIMIC3_TARGETS.items():
        assert abs(statistics[name] - target) <= TOLERANCE[name], (name, statistics[name], target)
    assert statistics["max_codes_per_visit"] <= 39 and statistics["max_visits"] <= 42
    again = synthesize_mimic3(tmp_path / "b", num_patients=500, seed=0, profile="mimic3")
    assert (again / "DIAGNOSES_ICD.csv").read_text() == (folder / "DIAGNOSES_ICD.csv").read_text()
    # The older generator stays the default and measurably different: fewer codes, more recurrence.
    clusters = cohort_statistics(load_mimic3(synthesize_mimic3(tmp_path / "c", num_patients=500, seed=0))[0])
    assert clusters["codes_per_visit"] < 11 and clusters["recurrence"] > 0.4
    with pytest.raises(ValueError, match="profile"):
        synthesize_mimic3(tmp_path / "d", num_patients=5, profile="mimic4")


def test_cli_synthesize_mimic3_prints_measured_statistics(tmp_path, capsys):
    from hf_latent_ebm.cli import main

    main(["ehr", "synthesize", "--profile", "mimic3", "--patients", "60", "--out", str(tmp_path / "data")])
    printed = capsys.readouterr().out
    assert "mimic3 profile" in printed and "recurrence:" in printed and "(13.06)" in printed
