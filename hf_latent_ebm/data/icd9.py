"""ICD-9-CM diagnosis codes as MIMIC stores them (undotted strings) and their chapters."""

# The 19 chapters of ICD-9-CM by 3-character category: numeric ranges, then the V (supplementary factors) and E
# (external causes) classifications. Every code a parser keeps must fall in one of them.
ICD9_CHAPTERS = (
    ("001", "139", "infectious and parasitic diseases"), ("140", "239", "neoplasms"),
    ("240", "279", "endocrine, nutritional, metabolic, immunity"), ("280", "289", "blood"),
    ("290", "319", "mental disorders"), ("320", "389", "nervous system and sense organs"),
    ("390", "459", "circulatory system"), ("460", "519", "respiratory system"), ("520", "579", "digestive system"),
    ("580", "629", "genitourinary system"), ("630", "679", "pregnancy and childbirth"),
    ("680", "709", "skin"), ("710", "739", "musculoskeletal system"), ("740", "759", "congenital anomalies"),
    ("760", "779", "perinatal conditions"), ("780", "799", "symptoms and ill-defined conditions"),
    ("800", "999", "injury and poisoning"), ("V01", "V91", "supplementary factors (V codes)"),
    ("E000", "E999", "external causes (E codes)"),
)


def dot_icd9(code: str) -> str:
    """MIMIC's undotted ICD-9 diagnosis code in dotted form: the dot after the 3-character category (4 for E codes),
    e.g. "4280" -> "428.0", "V1582" -> "V15.82", "E8120" -> "E812.0", "486" -> "486". Raises a ValueError for a
    string that is not an ICD-9 diagnosis code."""
    if not isinstance(code, str):
        raise ValueError(f"an ICD-9 code is a string, got {type(code).__name__} {code!r}")
    code = code.strip().upper()
    head = 4 if code.startswith("E") else 3
    digits = code[1:] if code[:1] in ("V", "E") else code
    if not digits.isdigit() or not head <= len(code) <= head + 2 or "." in code:
        raise ValueError(f"{code!r} is not an undotted ICD-9 diagnosis code (3-5 characters, digits after an optional "
                         "V or E; E codes have 4-5)")
    return code if len(code) == head else f"{code[:head]}.{code[head:]}"


def dotted_icd9(raw: str) -> str:
    """A dotted ICD-9 code from a dotted or undotted one ("4280", "428.0" -> "428.0"). Raises a ValueError for a
    string that is not one, and for a dot in the wrong place ("42.80" is not a spelling of 428.0)."""
    dotted = dot_icd9(raw.replace(".", ""))
    if "." in raw and raw.rstrip(".") != dotted:
        raise ValueError(f"{raw!r} has its dot in the wrong place (did you mean {dotted}?)")
    return dotted


def icd9_chapter(code: str) -> int:
    """The index in `ICD9_CHAPTERS` of a (dotted or undotted) code's chapter; a ValueError outside every chapter."""
    category = code.split(".")[0] if "." in code else dot_icd9(code).split(".")[0]
    for index, (first, last, _) in enumerate(ICD9_CHAPTERS):
        same_kind = category[:1].isdigit() == first[:1].isdigit() and (category[:1].isdigit() or
                                                                       category[0] == first[0])
        if same_kind and len(category) == len(first) and first <= category <= last:
            return index
    raise ValueError(f"ICD-9 code {code!r} (category {category!r}) falls in no ICD-9-CM chapter")


__all__ = ["ICD9_CHAPTERS", "dot_icd9", "dotted_icd9", "icd9_chapter"]
