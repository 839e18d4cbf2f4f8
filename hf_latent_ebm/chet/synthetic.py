"""A seeded stand-in for MIMIC-III: ADMISSIONS.csv and DIAGNOSES_ICD.csv in its schema, from a latent
disease-cluster process, so the real parsers and every later step run on it unchanged."""

import csv
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

# 254 real ICD-9-CM codes (undotted, as MIMIC stores them) in ten clusters of conditions that co-occur. The research
# notes ask for 200-400: with about a hundred, fewer than the models' hidden sizes, a visit's codes pass intact
# through any linear embedding, which the thousands of codes of real records do not allow.
DISEASE_CLUSTERS = {
    "heart failure and cardiac": ["4280", "42832", "42833", "4281", "42830", "4289", "42731", "41401", "4019", "4241",
                                  "4168", "412", "42789", "4254", "V4581", "V5861", "41071", "4111", "4139", "42732",
                                  "4240", "4233", "4271", "4275", "4260", "4270", "4293", "4148", "4142"],
    "renal": ["5849", "5859", "40391", "2762", "2761", "2767", "5856", "V4511", "5990", "40390", "5845", "5848", "5853",
              "5854", "5855", "58381", "5939", "5951", "5996", "2765", "2760", "40301", "40311", "V4512", "28521"],
    "diabetes and metabolic": ["25000", "25001", "25002", "25040", "2724", "2720", "2449", "27800", "2753", "2768",
                               "25060", "25050", "25013", "25080", "25003", "2722", "2721", "27801", "2452", "2639",
                               "2752", "2750", "2689", "25041", "25051"],
    "respiratory": ["51881", "486", "496", "49121", "5119", "5180", "4928", "32723", "V1582", "78609", "51882", "51884",
                    "49320", "49390", "4940", "5121", "5128", "5185", "51189", "5148", "515", "49122", "4660", "7862",
                    "78605"],
    "sepsis and infection": ["0389", "99592", "78552", "0380", "03811", "00845", "5070", "6826", "99591", "4821",
                             "03842", "03849", "03810", "03812", "0382", "0413", "04111", "04104", "0414", "48241",
                             "4829", "1120", "78559", "99931", "6829"],
    "digestive and liver": ["53081", "5715", "5712", "5789", "5770", "5601", "56210", "4560", "5723", "2851", "5781",
                            "5780", "5693", "5750", "57410", "5771", "5728", "5722", "5724", "07070", "07054", "5363",
                            "5609", "5680", "53100"],
    "neurological and mental": ["311", "3051", "29181", "3320", "3310", "4349", "43491", "34590", "3004", "2930",
                                "2948", "29620", "2989", "30390", "30500", "3453", "3481", "3485", "34830", "43411",
                                "4359", "33394", "3572", "3371", "30000"],
    "haematology and oncology": ["2875", "2800", "1977", "1970", "1625", "1983", "2384", "28860", "V1046", "2866",
                                 "2859", "2848", "28529", "2869", "1539", "1578", "1550", "1749", "1890", "20280",
                                 "20300", "1991", "1962", "V5811", "V1051"],
    "injury": ["80501", "8052", "8600", "8020", "E8120", "E8889", "E8147", "85221", "86121", "9678", "80701", "8730",
               "8208", "82021", "8054", "85200", "85300", "E8859", "E8160", "E8490", "E9600", "9190", "9248", "8910",
               "E8782"],
    "symptoms and history": ["7802", "78039", "78650", "7895", "7907", "V090", "V1251", "V1011", "V667", "V5867", "7806",
                             "78659", "78791", "7840", "7863", "78701", "7994", "78900", "7855", "7991", "V1259",
                             "V1254", "V4986", "V4582", "V1588"],
}
# Chronic conditions stay on a patient's record from admission to admission; acute ones mostly resolve. One
# recurrence rate for every code would make "repeat the last visit" nearly the best possible prediction, which real
# records are not.
CHRONIC_CODES = frozenset({
    "4280", "42832", "42833", "4281", "42830", "4289", "42731", "41401", "4019", "412", "V4581", "V5861", "4254",
    "4139", "4240", "4142", "V4582", "5859", "5856", "5853", "5854", "5855", "40391", "40390", "40301", "40311",
    "V4511", "25000", "25001", "25002", "25040", "25041", "25050", "25051", "25060", "25080", "25003", "2724", "2720",
    "2722", "2721", "2449", "2452", "27800", "27801", "496", "49121", "49320", "49390", "4940", "515", "32723", "5715",
    "5712", "07070", "07054", "311", "3051", "3320", "3310", "34590", "3004", "2948", "29620", "30390", "33394",
    "3572", "1977", "1970", "1539", "1578", "1550", "1749", "1890", "20280", "20300", "1991", "1962", "V1046", "V1051",
    "V1582", "V1251", "V1011", "V1259", "V1254", "V1588"})
CHRONIC_RECURRENCE, ACUTE_RECURRENCE = 0.85, 0.25
# Diseases lead to others (diabetes to kidney and heart disease, kidney to heart failure, lung disease to
# infection, ...): a newly active cluster follows these links with probability PROGRESSION_RATE.
PROGRESSION = {"diabetes and metabolic": ["renal", "heart failure and cardiac"],
               "renal": ["heart failure and cardiac", "haematology and oncology"],
               "heart failure and cardiac": ["renal", "respiratory"], "respiratory": ["sepsis and infection"],
               "sepsis and infection": ["renal", "respiratory"], "digestive and liver": ["haematology and oncology"],
               "neurological and mental": ["injury"], "haematology and oncology": ["sepsis and infection"],
               "injury": ["neurological and mental"], "symptoms and history": ["heart failure and cardiac"]}
PROGRESSION_RATE = 0.7
UNRELATED_RATE = 0.08  # of each new code: drawn from outside the patient's active clusters


HEART_FAILURE_CODES = tuple(code for code in DISEASE_CLUSTERS["heart failure and cardiac"] if code.startswith("428"))

# The `mimic3` profile's targets: the statistics of MIMIC-III's cohort of patients with two or more admissions, as
# the Chet paper (Lu, Han & Ning, AAAI 2022, Table 1, "statistics of datasets") reports them, the same cohort as
# GRAM (Choi et al., KDD 2017, Table 1: 7,499 patients, 2.66 visits, 13.06 codes per visit, at most 39) and
# CGL / Sherbet (Lu et al. 2021): 7,493 patients, 2.66 admissions per patient on average (at most 42), 13.06 codes
# per admission on average (at most 39), 4,880 distinct ICD-9 codes. Not published there, so assumed (docs/ehr.md,
# "A cohort with MIMIC-III's statistics"): the recurrence, 0.31 of a visit's codes again in the next visit, is the
# recall Chet reports at the length of a repeated visit (R@10 28.64, R@20 37.87, interpolated at 13 codes), that
# is "repeat the last visit" no stronger on MIMIC-III than Chet; heart failure (a 428.x code in the last visit),
# 0.30 of the patients, from 428.0 being in about a fifth of all MIMIC-III admissions (recalled, not verified) and
# readmitted patients being sicker. The 4,880 codes are not matched: the generator keeps its 254 real codes.
MIMIC3_TARGETS = {"visits_per_patient": 2.66, "codes_per_visit": 13.06, "recurrence": 0.31, "heart_failure": 0.30}
MIMIC3_MAX_VISITS, MIMIC3_MAX_CODES = 42, 39
# Assumed shapes around the published means: extra visits beyond two are geometric; a visit's code count is one
# plus a negative binomial of dispersion 4 (standard deviation about 7). A heart-failure patient's admission carries
# a 428.x code with probability 0.9; heart failure starts at a later admission with probability 0.1 each, and the
# share with it at the first admission is solved from the target (`_first_visit_heart_failure`).
MIMIC3_CODE_DISPERSION = 4.0
MIMIC3_HF_CODED, MIMIC3_HF_ONSET = 0.9, 0.1
# Tuned once (7,500 patients) so the measured recurrence meets the target; chronic codes recur 3.4 times as often as
# acute ones, the older generator's ratio (0.85 / 0.25).
MIMIC3_ACUTE_RECURRENCE = 0.165
MIMIC3_CHRONIC_RECURRENCE = 3.4 * MIMIC3_ACUTE_RECURRENCE
PROFILES = ("clusters", "mimic3")


def _write_csvs(out: Path, admissions: list, diagnoses: list) -> Path:
    with open(out / "ADMISSIONS.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME"])
        writer.writerows(admissions)
    with open(out / "DIAGNOSES_ICD.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"])
        writer.writerows(diagnoses)
    return out


def synthesize_mimic3(out_dir, num_patients: int = 1000, seed: int = 0, max_visits: int | None = None,
                      profile: str = "clusters") -> Path:
    """
    Write `ADMISSIONS.csv` and `DIAGNOSES_ICD.csv` (MIMIC-III's columns, integer ids, `%Y-%m-%d %H:%M:%S` times,
    undotted ICD-9 codes) for `num_patients` patients.

    `profile="clusters"` (the default, the first generator): 1 to `max_visits` (default 6) admissions each (a few
    with one, which the parsers drop and count). Each patient has active disease clusters; at every admission a code
    of the previous admission recurs with probability 0.85 if it is chronic (`CHRONIC_CODES`) and 0.25 if acute
    (persistent codes), new codes come from the active clusters (neighbour-emerging: they co-occur with the previous
    codes across the cohort) or, each with probability 0.08, from anywhere (unrelated-emerging), and a new cluster
    activates with probability 0.25 per admission, along a disease progression link (`PROGRESSION`) of an active
    cluster with probability 0.7. A fifth of the patients start in the cardiac cluster, so heart-failure codes
    (428.x) are in about a quarter to a third of last visits.

    `profile="mimic3"`: the same clusters and progression, with MIMIC-III's published statistics as targets
    (`MIMIC3_TARGETS`; `cohort_statistics` measures them): every patient has 2 to `max_visits` (default 42)
    admissions, 2.66 on average; 13.06 codes per admission on average (1 to 39); 31% of an admission's codes again
    in the next one; a 428.x code in the last admission of 30% of the patients.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if max_visits is None:
        max_visits = MIMIC3_MAX_VISITS if profile == "mimic3" else 6
    if num_patients < 1 or max_visits < 2:
        raise ValueError(f"need num_patients >= 1 and max_visits >= 2, got {num_patients}, {max_visits}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if profile == "mimic3":
        return _write_csvs(out, *_mimic3_rows(rng, num_patients, max_visits))
    names = list(DISEASE_CLUSTERS)
    clusters = list(DISEASE_CLUSTERS.values())
    links = {names.index(name): [names.index(to) for to in targets] for name, targets in PROGRESSION.items()}
    all_codes = sorted({code for cluster in clusters for code in cluster})
    admissions, diagnoses = [], []
    hadm_id = 100000
    start = datetime(2101, 1, 1)
    for subject_id in range(1, num_patients + 1):
        num_visits = 1 if rng.random() < 0.05 else int(rng.integers(2, max_visits + 1))
        first = 0 if rng.random() < 0.2 else int(rng.integers(1, len(clusters)))
        active = {first}
        time = start + timedelta(days=int(rng.integers(0, 3650)))
        previous: list[str] = []
        for _ in range(num_visits):
            if rng.random() < 0.25:
                if rng.random() < PROGRESSION_RATE:
                    source = sorted(active)[int(rng.integers(len(active)))]
                    active.add(links[source][int(rng.integers(len(links[source])))])
                else:
                    active.add(int(rng.integers(0, len(clusters))))
            codes = [code for code in previous
                     if rng.random() < (CHRONIC_RECURRENCE if code in CHRONIC_CODES else ACUTE_RECURRENCE)]
            pool = [code for index in sorted(active) for code in clusters[index]]
            target = int(rng.integers(5, 16))
            while len(set(codes)) < target:
                if rng.random() < UNRELATED_RATE:
                    codes.append(all_codes[int(rng.integers(len(all_codes)))])
                else:
                    codes.append(pool[int(rng.integers(len(pool)))])
            codes = list(dict.fromkeys(codes))
            hadm_id += 1
            time = _record_visit(admissions, diagnoses, subject_id, hadm_id, time, codes, rng)
            previous = codes
    return _write_csvs(out, admissions, diagnoses)


def _record_visit(admissions: list, diagnoses: list, subject_id: int, hadm_id: int, admit, codes: list,
                  rng: np.random.Generator):
    """Append one admission (a stay of 1-14 days) and its diagnosis rows; returns when the next visit starts."""
    admissions.append([len(admissions) + 1, subject_id, hadm_id, admit.strftime("%Y-%m-%d %H:%M:%S"),
                       (admit + timedelta(days=int(rng.integers(1, 15)))).strftime("%Y-%m-%d %H:%M:%S")])
    for seq, code in enumerate(codes, start=1):
        diagnoses.append([len(diagnoses) + 1, subject_id, hadm_id, seq, code])
    return admit + timedelta(days=int(rng.integers(20, 400)))


def _extra_visit_rate() -> float:
    """The geometric rate of visits beyond the second: its mean, 1 / rate - 1, is the target's 2.66 - 2."""
    return 1.0 / (MIMIC3_TARGETS["visits_per_patient"] - 1.0)


def _first_visit_heart_failure(max_visits: int) -> float:
    """
    The share of patients with heart failure at their first admission that puts a 428.x code in the last admission
    of `MIMIC3_TARGETS["heart_failure"]` of them: P(coded) = 0.9 * (h + (1 - h) * E[1 - 0.9^(visits - 1)]).
    """
    rate = _extra_visit_rate()
    extra = np.arange(max_visits - 1)
    weights = rate * (1 - rate) ** extra
    weights[-1] = (1 - rate) ** extra[-1]  # the cap collects the tail
    onset = float(np.sum(weights * (1 - (1 - MIMIC3_HF_ONSET) ** (extra + 1))))
    share = (MIMIC3_TARGETS["heart_failure"] / MIMIC3_HF_CODED - onset) / (1 - onset)
    return float(np.clip(share, 0.0, 1.0))


class _Mimic3Process:
    """The `mimic3` profile's admission process: the code tables and one step from a patient's hidden state (active
    clusters, heart failure, the previous admission's codes) to the next admission's codes. A step of its own so
    that a patient's true next-admission distribution can be sampled from the state (the oracle row of
    `research/ehr/oracle_mimic3.py`)."""

    def __init__(self):
        names = list(DISEASE_CLUSTERS)
        self.cardiac = names.index("heart failure and cardiac")
        self.clusters = [[code for code in cluster if code not in HEART_FAILURE_CODES]
                         for cluster in DISEASE_CLUSTERS.values()]
        self.links = {names.index(name): [names.index(to) for to in targets] for name, targets in PROGRESSION.items()}
        self.all_codes = sorted({code for cluster in self.clusters for code in cluster})
        self.mean_extra_codes = MIMIC3_TARGETS["codes_per_visit"] - 1

    def next_visit(self, rng: np.random.Generator, state: dict, first: bool) -> list[str]:
        """The codes of the next admission; updates `state` ("active", "heart_failure", "previous") in place."""
        active, previous = state["active"], state["previous"]
        if not first and not state["heart_failure"] and rng.random() < MIMIC3_HF_ONSET:
            state["heart_failure"] = True
            active.add(self.cardiac)
        if rng.random() < 0.25:
            if rng.random() < PROGRESSION_RATE:
                source = sorted(active)[int(rng.integers(len(active)))]
                active.add(self.links[source][int(rng.integers(len(self.links[source])))])
            else:
                active.add(int(rng.integers(0, len(self.clusters))))
        size = 1 + int(rng.negative_binomial(MIMIC3_CODE_DISPERSION, MIMIC3_CODE_DISPERSION
                                             / (MIMIC3_CODE_DISPERSION + self.mean_extra_codes)))
        size = min(size, MIMIC3_MAX_CODES)
        codes = []
        if state["heart_failure"] and rng.random() < MIMIC3_HF_CODED:
            kept = [code for code in previous if code in HEART_FAILURE_CODES]
            codes.append(kept[0] if kept else HEART_FAILURE_CODES[int(rng.integers(len(HEART_FAILURE_CODES)))])
        recurring = [code for code in previous if code not in HEART_FAILURE_CODES and rng.random() < (
            MIMIC3_CHRONIC_RECURRENCE if code in CHRONIC_CODES else MIMIC3_ACUTE_RECURRENCE)]
        if len(codes) + len(recurring) > size:
            recurring = [recurring[index] for index in sorted(
                rng.choice(len(recurring), size=max(size - len(codes), 0), replace=False))]
        codes += recurring
        # New codes are new: not in the previous admission, so the recurrence is the rates' and nothing else's.
        taken = set(codes) | set(previous)
        pool = [code for index in sorted(active) for code in self.clusters[index] if code not in taken]
        while len(codes) < size:
            if pool and rng.random() >= UNRELATED_RATE:
                code = pool.pop(int(rng.integers(len(pool))))
            else:
                fresh = [code for code in self.all_codes if code not in taken]
                code = fresh[int(rng.integers(len(fresh)))]
                if code in pool:
                    pool.remove(code)
            codes.append(code)
            taken.add(code)
        state["previous"] = codes
        return codes


def _mimic3_rows(rng: np.random.Generator, num_patients: int, max_visits: int, last_states: dict | None = None):
    """The admission and diagnosis rows of the `mimic3` profile (see `synthesize_mimic3`); with `last_states`, also
    each patient's hidden state before the last admission (a copy, keyed by subject id)."""
    process = _Mimic3Process()
    first_heart_failure = _first_visit_heart_failure(max_visits)
    extra_rate = _extra_visit_rate()
    admissions, diagnoses = [], []
    hadm_id = 100000
    start = datetime(2101, 1, 1)
    for subject_id in range(1, num_patients + 1):
        num_visits = min(1 + int(rng.geometric(extra_rate)), max_visits)
        heart_failure = bool(rng.random() < first_heart_failure)
        state = {"active": {process.cardiac if heart_failure else int(rng.integers(0, len(process.clusters)))},
                 "heart_failure": heart_failure, "previous": []}
        time = start + timedelta(days=int(rng.integers(0, 3650)))
        for visit in range(num_visits):
            if last_states is not None and visit == num_visits - 1:
                last_states[subject_id] = {**state, "active": set(state["active"]), "previous": list(state["previous"])}
            codes = process.next_visit(rng, state, first=visit == 0)
            hadm_id += 1
            time = _record_visit(admissions, diagnoses, subject_id, hadm_id, time, codes, rng)
    return admissions, diagnoses


def cohort_statistics(records) -> dict:
    """
    The statistics `MIMIC3_TARGETS` names, measured on patients with two or more visits (Chet's cohort): `records`
    is a patient dataset or list of dicts with `visits` (lists of codes, dotted or not, in time order), as
    `load_mimic3` returns. `recurrence` is the share of a visit's codes that are again in the next visit, over all
    consecutive pairs; `heart_failure` the share of patients with a 428.x code in their last visit. Also
    `patients`, `distinct_codes`, `max_visits` and `max_codes_per_visit`.
    """
    visits_per_patient, sizes, codes = [], [], set()
    repeated = paired = heart_failure = 0
    for patient in records:
        visits = [set(visit) for visit in patient["visits"]]
        if len(visits) < 2:
            continue
        visits_per_patient.append(len(visits))
        for visit in visits:
            sizes.append(len(visit))
            codes |= visit
        for before, after in zip(visits[:-1], visits[1:]):
            repeated += len(before & after)
            paired += len(before)
        heart_failure += any(code.split(".")[0][:3] == "428" for code in visits[-1])
    if not visits_per_patient:
        raise ValueError("no patient with two or more visits to measure")
    return {"patients": len(visits_per_patient), "visits_per_patient": float(np.mean(visits_per_patient)),
            "codes_per_visit": float(np.mean(sizes)), "recurrence": repeated / paired,
            "heart_failure": heart_failure / len(visits_per_patient), "distinct_codes": len(codes),
            "max_visits": max(visits_per_patient), "max_codes_per_visit": max(sizes)}


__all__ = ["synthesize_mimic3", "cohort_statistics", "DISEASE_CLUSTERS", "CHRONIC_CODES", "PROGRESSION",
           "MIMIC3_TARGETS", "PROFILES"]
