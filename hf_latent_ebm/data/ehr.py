"""Electronic health records: MIMIC-III and MIMIC-IV diagnoses as one `datasets.Dataset` of patients, each a
time-ordered list of visits of dotted ICD-9 codes, with an `EHRDataReport` of everything that was skipped and why.

Both parsers share one vectorised pipeline (pandas); a row that cannot be used is counted, never silently dropped,
and an input that cannot be interpreted without guessing (a missing column, two admissions with one id) is an error.
"""

import gzip
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .icd9 import dotted_icd9, icd9_chapter
from .icd10 import ICD10_ADVICE, _as_icd10_map, load_icd10_map, looks_like_icd10  # noqa: F401 (re-exported)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # MIMIC's ADMITTIME layout, also used for the returned admit_times
MIMIC3_FILES = ("ADMISSIONS.csv", "DIAGNOSES_ICD.csv")
MIMIC4_FILES = ("admissions.csv", "diagnoses_icd.csv", "patients.csv")


@dataclass
class EHRDataReport:
    """What a parser read, skipped and kept. Every patient read ends up in exactly one of patients_kept,
    patients_with_empty_visit, patients_with_one_visit (fewer than two visits left, zero included) and
    patients_not_sampled (left out by `max_patients`)."""

    patients_read: int = 0  # distinct subjects among the well-formed admission rows
    admissions_read: int = 0
    diagnosis_rows_read: int = 0
    malformed_rows: int = 0  # a required field empty or unparsable (bad time, non-integer id, unknown icd_version)
    invalid_codes: int = 0  # rows whose code is not an ICD-9 diagnosis code
    codes_like_icd10: int = 0  # of those (and codes_outside_chapters), rows shaped as ICD-10-CM codes (I50.20)
    codes_outside_chapters: int = 0
    unmapped_icd10: int = 0  # ICD-10 rows the map does not cover (MIMIC-IV: or no map given)
    diagnoses_without_admission: int = 0  # no admission with that HADM_ID for that SUBJECT_ID
    duplicate_diagnoses: int = 0  # the same code twice in one admission, collapsed to one
    admissions_out_of_order: int = 0  # patients whose admissions were not in chronological file order
    admissions_outside_years: int = 0  # MIMIC-IV admissions before min_year
    visits_without_codes: int = 0
    patients_with_empty_visit: int = 0
    patients_with_one_visit: int = 0
    patients_not_sampled: int = 0
    patients_kept: int = 0
    visits_kept: int = 0
    codes_kept: int = 0  # distinct codes in the kept visits

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"  {name.replace('_', ' ')}: {value}" for name, value in self.to_dict().items()
                 if value or name.endswith("_kept")]
        return "EHR data report:\n" + "\n".join(lines)


def _find(folder, names) -> list[Path]:
    """Each of `names` (plain or .gz) in `folder`, or in its `hosp/` subfolder (MIMIC-IV's own layout)."""
    folder = Path(folder)
    found, missing = [], []
    for name in names:
        candidates = [base / suffix for base in (folder, folder / "hosp") for suffix in (name, name + ".gz")]
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        (found if path else missing).append(path or name)
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(f'{name} (or {name}.gz)' for name in missing)}; "
                                f"expected the files {', '.join(names)}")
    return found


def _read(path: Path, required: list[str], optional: tuple = ()):
    """The `required` (and present `optional`) columns of a CSV file as strings ("" for an empty field)."""
    import pandas as pd

    try:
        columns = list(pd.read_csv(path, nrows=0).columns)
        missing = [column for column in required if column not in columns]
        if missing:
            raise ValueError(f"{path.name} lacks the column(s) {', '.join(missing)} (needs {', '.join(required)}); "
                             f"found {', '.join(map(str, columns))}")
        wanted = required + [column for column in optional if column in columns]
        return pd.read_csv(path, dtype=str, keep_default_na=False, usecols=wanted)[wanted]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as error:
        raise ValueError(f"{path} is not a readable CSV file: {error}") from error


def _coerce(frame, report: EHRDataReport, ints=(), times=(), texts=()):
    """`frame` with its `ints` columns as int64, `times` as datetimes and `texts` stripped; rows where any of them
    is empty or unparsable are dropped and counted as malformed."""
    import pandas as pd

    frame = frame.copy()
    good = pd.Series(True, index=frame.index)
    for column in ints:
        frame[column] = frame[column].str.strip()
        good &= frame[column].str.fullmatch(r"[+-]?\d+")
    for column in times:
        frame[column] = pd.to_datetime(frame[column].str.strip(), format=TIME_FORMAT, errors="coerce")
        good &= frame[column].notna()
    for column in texts:
        frame[column] = frame[column].str.strip().str.upper()
        good &= frame[column] != ""
    report.malformed_rows += int((~good).sum())
    frame = frame[good]
    return frame.astype({column: "int64" for column in ints})


def _clean_admissions(frame, file_name: str, report: EHRDataReport):
    """Admissions with columns subject, hadm, time: coerced, malformed rows counted, duplicate ids refused."""
    report.admissions_read += len(frame)
    frame = _coerce(frame, report, ints=("subject", "hadm"), times=("time",))
    duplicated = frame.hadm[frame.hadm.duplicated()]
    if len(duplicated):
        # Two admissions under one id would merge two visits' codes; which time is right cannot be told.
        raise ValueError(f"{file_name} has {len(duplicated)} duplicate admission id(s), e.g. HADM_ID "
                         f"{duplicated.iloc[0]}; each admission needs a unique id")
    report.patients_read = int(frame.subject.nunique())
    return frame


def _normalise_code(raw: str) -> str:
    """A dotted ICD-9 code from a dotted or undotted one; "" when it is not a code, "?" outside every chapter."""
    try:
        dotted = dotted_icd9(raw)  # a dot in the wrong place ("42.80") is not a spelling of 428.0
    except ValueError:
        return ""
    try:
        icd9_chapter(dotted)
    except ValueError:
        return "?"
    return dotted


def _check_selection(max_patients, min_visits) -> None:
    """The loaders' selection arguments, checked before any file is read."""
    if min_visits not in (1, 2):
        raise ValueError(f"min_visits must be 1 (prediction) or 2 (training), got {min_visits!r}")
    if max_patients is not None and (isinstance(max_patients, bool) or
                                     not isinstance(max_patients, (int, np.integer)) or max_patients < 1):
        raise ValueError(f"max_patients must be a positive integer or None, got {max_patients!r}")


def _assemble(admissions, diagnoses, report: EHRDataReport, max_patients, seed, hint: str = "", min_visits: int = 2):
    """The shared pipeline: `admissions` (clean: subject, hadm, time) and `diagnoses` (coerced: subject, hadm,
    code, and seq when the file had one) into the patient dataset."""
    import datasets
    import pandas as pd

    # Codes: normalise each distinct string once, then count and drop what is not a usable ICD-9 code.
    distinct = diagnoses.code.unique()
    normal = dict(zip(distinct, map(_normalise_code, distinct)))
    icd10_like = [code for code in distinct if normal[code] in ("", "?") and looks_like_icd10(code)]
    report.codes_like_icd10 += int(diagnoses.code.isin(icd10_like).sum())
    diagnoses = diagnoses.assign(code=diagnoses.code.map(normal))
    report.invalid_codes += int((diagnoses.code == "").sum())
    report.codes_outside_chapters += int((diagnoses.code == "?").sum())
    diagnoses = diagnoses[~diagnoses.code.isin(["", "?"])]
    known = diagnoses.merge(admissions[["subject", "hadm"]], on=["subject", "hadm"], how="left", indicator=True)
    report.diagnoses_without_admission += int((known._merge == "left_only").sum())
    diagnoses = diagnoses[(known._merge == "both").to_numpy()]
    if "seq" in diagnoses:  # SEQ_NUM order (priority); an unparsable one goes last, file order breaks ties
        diagnoses = diagnoses.assign(seq=pd.to_numeric(diagnoses.seq, errors="coerce"))
        diagnoses = diagnoses.sort_values("seq", kind="stable", na_position="last")
    unique = diagnoses.drop_duplicates(["hadm", "code"])
    report.duplicate_diagnoses += len(diagnoses) - len(unique)
    codes = unique.groupby("hadm", sort=False).code.agg(list)

    # Visits in time order (HADM_ID on ties); a patient whose rows moved had a non-chronological file.
    admissions = admissions.assign(position=np.arange(len(admissions)))
    admissions = admissions.sort_values(["subject", "time", "hadm"])
    moved = admissions.groupby("subject").position.diff() < 0
    report.admissions_out_of_order += int(admissions.subject[moved].nunique())
    admissions = admissions.assign(codes=admissions.hadm.map(codes))
    empty = admissions.codes.isna()
    report.visits_without_codes += int(empty.sum())

    # Patients: drop those with a code-less visit (as the reference Chet code does), then those with too few (two
    # for training: the inputs and the visit to predict; one for prediction).
    with_empty = admissions.subject[empty].unique()
    report.patients_with_empty_visit += len(with_empty)
    admissions = admissions[~admissions.subject.isin(with_empty)]
    counts = admissions.subject.value_counts()
    report.patients_with_one_visit += report.patients_read - len(with_empty) - int((counts >= min_visits).sum())
    kept = np.sort(counts.index[counts >= min_visits].to_numpy())
    if max_patients is not None and max_patients < len(kept):
        report.patients_not_sampled += len(kept) - max_patients
        kept = np.sort(np.random.default_rng(seed).choice(kept, size=max_patients, replace=False))
    admissions = admissions[admissions.subject.isin(kept)]
    report.patients_kept = len(kept)
    report.visits_kept = len(admissions)
    report.codes_kept = int(admissions.codes.explode().nunique())
    if not len(kept):
        enough = ("one", "two")[min_visits - 1]
        if report.codes_like_icd10 and not hint:
            hint = f"; {report.codes_like_icd10} diagnosis rows were not ICD-9: {ICD10_ADVICE}"
        raise ValueError(f"no patient with {enough} or more coded visits is left{hint}\n{report}")

    patients = admissions.assign(time=admissions.time.dt.strftime(TIME_FORMAT)).groupby("subject", sort=True)
    table = {"patient_id": patients.subject.first().tolist(),
             "admission_ids": patients.hadm.agg(list).tolist(),
             "admit_times": patients.time.agg(list).tolist(),
             "visits": patients.codes.agg(list).tolist()}
    features = datasets.Features({"patient_id": datasets.Value("int64"),
                                  "admission_ids": datasets.List(datasets.Value("int64")),
                                  "admit_times": datasets.List(datasets.Value("string")),
                                  "visits": datasets.List(datasets.List(datasets.Value("string")))})
    return datasets.Dataset.from_dict(table, features=features), report


def load_mimic3(folder, max_patients: int | None = None, seed: int = 0, min_visits: int = 2, icd10_map=None):
    """
    MIMIC-III diagnoses as a patient dataset and its `EHRDataReport`.

    Args:
        folder (`str` or `Path`): Holds ADMISSIONS.csv and DIAGNOSES_ICD.csv (each may be .csv.gz), with MIMIC-III's
            upper-case columns: SUBJECT_ID, HADM_ID, ADMITTIME (`%Y-%m-%d %H:%M:%S`) and SUBJECT_ID, HADM_ID,
            ICD9_CODE (dotted or undotted), SEQ_NUM optional (orders the codes of a visit). Other columns are ignored.
        max_patients (`int`, *optional*): Keep a random sample of this many of the usable patients.
        seed (`int`): Seeds that sample (`numpy.random.default_rng(seed)`).
        min_visits (`int`, defaults to 2): Patients with fewer coded visits are dropped (and counted): 2 to train
            (earlier visits, then the one to predict), 1 to predict the visit after the last.
        icd10_map (path or `dict`, *optional*): For files whose ICD9_CODE column holds ICD-10-CM codes instead: every
            code goes through this ICD-10 -> ICD-9 map (see `load_icd10_map`); rows it lacks count as unmapped.
            Without one, codes that are not ICD-9 are invalid, and those shaped as ICD-10-CM are also counted in
            `codes_like_icd10`.

    Returns: a `datasets.Dataset` in patient id order with columns patient_id (int64), admission_ids (list of int64),
    admit_times (list of "YYYY-MM-DD HH:MM:SS") and visits (list of lists of dotted ICD-9 codes, in time order), and
    the report. Raises FileNotFoundError for a missing file, ValueError for a missing column, a duplicate admission
    id, or when no patient with two or more coded visits is left.
    """
    _check_selection(max_patients, min_visits)
    icd10_map = _as_icd10_map(icd10_map)
    admissions_path, diagnoses_path = _find(folder, MIMIC3_FILES)
    report = EHRDataReport()
    admissions = _read(admissions_path, ["SUBJECT_ID", "HADM_ID", "ADMITTIME"])
    admissions = _clean_admissions(admissions.set_axis(["subject", "hadm", "time"], axis=1), admissions_path.name,
                                   report)
    diagnoses = _read(diagnoses_path, ["SUBJECT_ID", "HADM_ID", "ICD9_CODE"], optional=("SEQ_NUM",))
    diagnoses = diagnoses.rename(columns={"SUBJECT_ID": "subject", "HADM_ID": "hadm", "ICD9_CODE": "code",
                                          "SEQ_NUM": "seq"})
    report.diagnosis_rows_read += len(diagnoses)
    diagnoses = _coerce(diagnoses, report, ints=("subject", "hadm"), texts=("code",))
    if icd10_map is not None:
        diagnoses = _map_icd10(diagnoses, np.ones(len(diagnoses), dtype=bool), icd10_map, report)
    return _assemble(admissions, diagnoses, report, max_patients, seed, min_visits=min_visits)


def _map_icd10(diagnoses, rows, icd10_map, report: EHRDataReport):
    """`diagnoses` with the codes of `rows` (a boolean mask of ICD-10 rows) mapped to ICD-9; the rows the map lacks
    are counted as unmapped and dropped."""
    mapped = diagnoses.code.str.replace(".", "", regex=False).map(icd10_map or {})
    unmapped = rows & mapped.isna().to_numpy()
    report.unmapped_icd10 += int(unmapped.sum())
    return diagnoses.assign(code=mapped.where(rows, diagnoses.code))[~unmapped]


def load_mimic4(folder, icd10_map=None, min_year: int | None = 2013, max_patients: int | None = None, seed: int = 0,
                min_visits: int = 2):
    """
    MIMIC-IV diagnoses as a patient dataset (the columns of `load_mimic3`) and its `EHRDataReport`.

    Args:
        folder (`str` or `Path`): Holds admissions.csv, diagnoses_icd.csv and patients.csv (each may be .csv.gz;
            also found in a `hosp/` subfolder) with lower-case columns: subject_id, hadm_id, admittime; subject_id,
            hadm_id, icd_code, icd_version (seq_num optional); subject_id, anchor_year, anchor_year_group
            ("2014 - 2016").
        icd10_map (path or `dict`, *optional*): ICD-10 -> ICD-9 map (see `load_icd10_map`). Without one, ICD-10 rows
            are counted as unmapped and skipped.
        min_year (`int`, *optional*): Keep admissions whose real year (admittime's year - anchor_year + the first year
            of anchor_year_group, undoing MIMIC-IV's per-patient date shift) is at least this; None keeps all.
            The Chet paper keeps years after 2012.
        max_patients (`int`, *optional*), seed (`int`), min_visits (`int`): As in `load_mimic3`.

    An admission of a subject missing from patients.csv (or with an unparsable anchor) counts as malformed.
    """
    _check_selection(max_patients, min_visits)
    import pandas as pd

    icd10_map = _as_icd10_map(icd10_map)
    admissions_path, diagnoses_path, patients_path = _find(folder, MIMIC4_FILES)
    report = EHRDataReport()
    admissions = _read(admissions_path, ["subject_id", "hadm_id", "admittime"])
    admissions = _clean_admissions(admissions.set_axis(["subject", "hadm", "time"], axis=1), admissions_path.name,
                                   report)
    patients = _read(patients_path, ["subject_id", "anchor_year", "anchor_year_group"])
    patients = patients.set_axis(["subject", "anchor", "group"], axis=1)
    patients["group"] = patients.group.str.extract(r"^\s*(\d{4})", expand=False).fillna("")
    patients = _coerce(patients, EHRDataReport(), ints=("subject", "anchor", "group"))
    repeated = patients.subject[patients.subject.duplicated()]
    if len(repeated):
        raise ValueError(f"{patients_path.name} lists subject_id {repeated.iloc[0]} more than once; each patient "
                         "needs one anchor year")
    anchored = admissions.merge(patients, on="subject", how="left")
    known = anchored.anchor.notna().to_numpy()
    report.malformed_rows += int((~known).sum())
    read_ids = admissions.hadm
    admissions, anchored = admissions[known], anchored[known]
    if min_year is not None:
        year = anchored.time.dt.year - anchored.anchor + anchored.group
        recent = (year >= min_year).to_numpy()
        report.admissions_outside_years += int((~recent).sum())
        admissions = admissions[recent]

    diagnoses = _read(diagnoses_path, ["subject_id", "hadm_id", "icd_code", "icd_version"], optional=("seq_num",))
    diagnoses = diagnoses.rename(columns={"subject_id": "subject", "hadm_id": "hadm", "icd_code": "code",
                                          "icd_version": "version", "seq_num": "seq"})
    report.diagnosis_rows_read += len(diagnoses)
    diagnoses = _coerce(diagnoses, report, ints=("subject", "hadm", "version"), texts=("code",))
    unknown = ~diagnoses.version.isin([9, 10])
    report.malformed_rows += int(unknown.sum())
    diagnoses = diagnoses[~unknown]
    # Rows of admissions dropped by year or anchor were accounted for with their admission.
    diagnoses = diagnoses[~diagnoses.hadm.isin(read_ids[~read_ids.isin(admissions.hadm)])]
    diagnoses = _map_icd10(diagnoses, (diagnoses.version == 10).to_numpy(), icd10_map, report)
    hint = ("; the ICD-10 rows need a map: pass icd10_map (see load_icd10_map)"
            if report.unmapped_icd10 and icd10_map is None else "")
    return _assemble(admissions, diagnoses.drop(columns="version"), report, max_patients, seed, hint, min_visits)


def load_ehr(mimic3=None, mimic4=None, icd10_map=None, **kwargs):
    """`load_mimic3(mimic3, icd10_map=icd10_map, **kwargs)` or `load_mimic4(mimic4, icd10_map, **kwargs)`: give
    exactly one folder."""
    if (mimic3 is None) == (mimic4 is None):
        raise ValueError(f"give exactly one of mimic3= or mimic4= (a folder), got mimic3={mimic3!r}, "
                         f"mimic4={mimic4!r}")
    if mimic3 is not None:
        return load_mimic3(mimic3, icd10_map=icd10_map, **kwargs)
    return load_mimic4(mimic4, icd10_map=icd10_map, **kwargs)


__all__ = ["EHRDataReport", "load_mimic3", "load_mimic4", "load_icd10_map", "load_ehr", "looks_like_icd10"]
