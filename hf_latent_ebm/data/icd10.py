"""ICD-10-CM codes in ICD-9 records: recognising them and mapping them to ICD-9 (CMS GEMs or a two-column CSV)."""

import csv
import gzip
import re
from pathlib import Path

# ICD-10-CM's shape: a letter, a digit, a character, then up to 4 more after an optional dot ("I50.20").
_ICD10_SHAPE = re.compile(r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?")
ICD10_ADVICE = ("the codes look like ICD-10-CM, and the loaders read ICD-9 codes: map them with --icd10-map FILE "
                "(icd10_map= in Python), a CMS GEMs 2018_I10gem.txt file or a CSV with ICD10,ICD9 columns")


def looks_like_icd10(code: str) -> bool:
    """Whether a (dotted or undotted) code has the shape of an ICD-10-CM diagnosis code. Only meaningful for a code
    that is not ICD-9: ICD-10's E and V codes can also read as ICD-9 E and V codes."""
    return bool(_ICD10_SHAPE.fullmatch(str(code).strip().upper()))


def _clean_code(code) -> str:
    return str(code).strip().upper().replace(".", "")


def load_icd10_map(path) -> dict[str, str]:
    """
    An ICD-10-CM -> ICD-9-CM diagnosis map (undotted codes, dots removed) from a file, plain or .gz, in either layout:

    - CMS General Equivalence Mappings (`2018_I10gem.txt`): whitespace-separated `SOURCE TARGET FLAGS` lines, e.g.
      `I5020  4282 10000`; a flags 2nd digit of "1" or a target `NoDx` means "no map" and the line is skipped.
    - A CSV with a header holding ICD10 and ICD9 columns (the reference Chet code's icd10-icd9.csv).

    When a source code has several targets (GEMs list one line each), the first listed one is kept. Raises a
    ValueError naming the line of a malformed line, and when the file holds no usable mapping.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable text file: {error}") from error
    first = next((index for index, line in enumerate(lines) if line.strip()), 0)
    names = [name.strip().upper() for name in next(csv.reader(lines[first:first + 1]), [])]
    csv_layout = "ICD10" in names and "ICD9" in names
    mapping: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (csv_layout and number == first + 1):
            continue
        if csv_layout:
            fields = next(csv.reader([line]))
            if len(fields) != len(names):
                raise ValueError(f"{path}, line {number}: expected {len(names)} comma-separated fields "
                                 f"({lines[first].strip()}), got {line!r}")
            source, target = _clean_code(fields[names.index("ICD10")]), _clean_code(fields[names.index("ICD9")])
            usable = source and target and target != "NODX"
        else:
            fields = line.split()
            if len(fields) != 3 or not (len(fields[2]) == 5 and fields[2].isdigit()):
                raise ValueError(f"{path}, line {number}: expected 'SOURCE TARGET FLAGS' with 5-digit flags "
                                 f"(GEMs layout) or a CSV header with ICD10,ICD9 on line 1, got {line!r}")
            source, target = _clean_code(fields[0]), _clean_code(fields[1])
            usable = fields[2][1] != "1" and target != "NODX"
        if usable:
            mapping.setdefault(source, target)
    if not mapping:
        raise ValueError(f"{path} holds no usable ICD-10 -> ICD-9 mapping")
    return mapping


def _as_icd10_map(icd10_map) -> dict[str, str] | None:
    """A loader's `icd10_map` argument (None, a path or a dict) as an undotted ICD-10 -> ICD-9 dict, or None."""
    if isinstance(icd10_map, dict):
        return {_clean_code(source): _clean_code(target) for source, target in icd10_map.items()}
    return None if icd10_map is None else load_icd10_map(icd10_map)


__all__ = ["ICD10_ADVICE", "load_icd10_map", "looks_like_icd10"]
