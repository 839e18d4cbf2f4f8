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


def synthesize_mimic3(out_dir, num_patients: int = 1000, seed: int = 0, max_visits: int = 6) -> Path:
    """
    Write `ADMISSIONS.csv` and `DIAGNOSES_ICD.csv` (MIMIC-III's columns, integer ids, `%Y-%m-%d %H:%M:%S` times,
    undotted ICD-9 codes) for `num_patients` patients with 1 to `max_visits` admissions each (a few with one, which
    the parsers drop and count).

    Each patient has active disease clusters; at every admission a code of the previous admission recurs with
    probability 0.85 if it is chronic (`CHRONIC_CODES`) and 0.25 if acute (persistent codes), new codes come from
    the active clusters (neighbour-emerging: they co-occur with the previous codes across the cohort) or, each with
    probability 0.08, from anywhere (unrelated-emerging), and a new cluster activates with probability 0.25 per
    admission, along a disease progression link (`PROGRESSION`) of an active cluster with probability 0.7. A fifth
    of the patients start in the cardiac cluster, so heart-failure codes (428.x) are in about a quarter to a third
    of last visits.
    """
    if num_patients < 1 or max_visits < 2:
        raise ValueError(f"need num_patients >= 1 and max_visits >= 2, got {num_patients}, {max_visits}")
    rng = np.random.default_rng(seed)
    names = list(DISEASE_CLUSTERS)
    clusters = list(DISEASE_CLUSTERS.values())
    links = {names.index(name): [names.index(to) for to in targets] for name, targets in PROGRESSION.items()}
    all_codes = sorted({code for cluster in clusters for code in cluster})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
            admit = time
            admissions.append([len(admissions) + 1, subject_id, hadm_id, admit.strftime("%Y-%m-%d %H:%M:%S"),
                               (admit + timedelta(days=int(rng.integers(1, 15)))).strftime("%Y-%m-%d %H:%M:%S")])
            for seq, code in enumerate(codes, start=1):
                diagnoses.append([len(diagnoses) + 1, subject_id, hadm_id, seq, code])
            time = admit + timedelta(days=int(rng.integers(20, 400)))
            previous = codes
    with open(out / "ADMISSIONS.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME"])
        writer.writerows(admissions)
    with open(out / "DIAGNOSES_ICD.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"])
        writer.writerows(diagnoses)
    return out


__all__ = ["synthesize_mimic3", "DISEASE_CLUSTERS", "CHRONIC_CODES", "PROGRESSION"]
