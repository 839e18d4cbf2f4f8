"""Text corpora as `datasets.DatasetDict`s with train / validation / test splits of a `text` column.

Sources: any local .txt (one text per line), .csv (a text column) or .jsonl (a text field) through
`datasets.load_dataset`, and the embedded default corpus "kjv": the King James Bible's 31,102 verses from
Debian's `bible-kjv` package. It is the default because its verses (26 words on average, one per line, 31k of
them) are closest to the Penn Treebank sentences the papers use (about 21 words, 42k training sentences) among
the corpora that install offline (WordNet glosses average about 12 words; the gensim Wikipedia sample has 17k
sentences that need markup stripping).
"""

import codecs
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

TEXT_FILE_BUILDERS = {".txt": "text", ".csv": "csv", ".jsonl": "json", ".json": "json"}
SPLIT_FRACTIONS = {"train": 0.9, "validation": 0.05, "test": 0.05}
_VERSE_START = re.compile(r"^\s+\d+ (.*)")


def kjv_verses() -> list[str]:
    """The 31,102 KJV verses, one string each, read with the `bible` program of Debian's bible-kjv package."""
    if shutil.which("bible") is None:
        raise ImportError("the default text corpus is the King James Bible from Debian's bible-kjv package: "
                          "apt-get install bible-kjv (or pass your own --data file)")
    dump = subprocess.run(["bible", "gen1:1-rev22:21"], capture_output=True, text=True, check=True).stdout
    verses: list[str] = []
    for line in dump.splitlines():
        match = _VERSE_START.match(line)
        if match:
            verses.append(match.group(1).strip())
        elif line and not line.startswith(" ") and verses and not re.fullmatch(r"[1-3]? ?[A-Z][\w ]* \d+", line):
            verses[-1] += " " + line.strip()  # a verse wrapped onto the next line
    return verses


def _check_is_text(path: Path, sample_bytes: int = 1 << 16) -> None:
    """A corpus file must be UTF-8 text: a binary file (a model, an archive, an image) otherwise fails deep inside
    `datasets` with a traceback that names neither the file nor the cause. The first 64 KiB decide."""
    with open(path, "rb") as file:
        sample = file.read(sample_bytes)
    if b"\0" in sample:
        raise ValueError(f"text corpus {path} looks binary (it holds NUL bytes), not UTF-8 text; give a .txt, .csv or "
                         ".jsonl file of text")
    try:
        # A multi-byte character may straddle a cut sample's end: the incremental decoder waits for its rest.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=len(sample) < sample_bytes)
    except UnicodeDecodeError as error:
        raise ValueError(f"text corpus {path} is not UTF-8 text (byte {error.start}: {error.reason}); save it as "
                         "UTF-8") from None


def load_text_dataset(source: str = "kjv", text_column: str = "text", seed: int = 0):
    """
    Load a corpus and split it 90 / 5 / 5 into train / validation / test with a fixed seed.

    Blank lines (and texts that are only whitespace) are dropped; every other text is kept as is (tokenizers
    decide what unknown characters become). An empty corpus is an error.

    Args:
        source (`str`, defaults to "kjv"): "kjv" or a path to a .txt / .csv / .jsonl file.
        text_column (`str`, defaults to "text"): The column (csv) or field (jsonl) holding the text.
        seed (`int`, defaults to 0): Seeds the split.
    """
    import datasets

    if source == "kjv":
        corpus = datasets.Dataset.from_dict({"text": kjv_verses()})
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"text corpus {source!r} is neither 'kjv' nor an existing file")
        builder = TEXT_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(f"unsupported corpus file type {path.suffix!r}; use one of {sorted(TEXT_FILE_BUILDERS)}")
        if path.stat().st_size == 0:
            raise ValueError(f"text corpus {source} is empty")
        _check_is_text(path)
        corpus = datasets.load_dataset(builder, data_files=str(path), split="train")
        if text_column not in corpus.column_names:
            raise ValueError(f"{source} has no {text_column!r} column; columns: {corpus.column_names}")
        corpus = corpus.select_columns([text_column]).rename_column(text_column, "text") \
            if text_column != "text" else corpus.select_columns(["text"])
    corpus = corpus.filter(lambda row: isinstance(row["text"], str) and bool(row["text"].strip()))
    if len(corpus) < 3:
        raise ValueError(f"text corpus {source!r} has {len(corpus)} non-blank texts; at least 3 are needed for "
                         "train / validation / test splits")
    # Each held-out split gets at least one text, so small corpora still split; the order is a seeded shuffle.
    num_validation = max(1, round(SPLIT_FRACTIONS["validation"] * len(corpus)))
    num_test = max(1, round(SPLIT_FRACTIONS["test"] * len(corpus)))
    order = np.random.default_rng(seed).permutation(len(corpus))
    bounds = {"train": (0, len(corpus) - num_validation - num_test),
              "validation": (len(corpus) - num_validation - num_test, len(corpus) - num_test),
              "test": (len(corpus) - num_test, len(corpus))}
    return datasets.DatasetDict({name: corpus.select(order[start:end]) for name, (start, end) in bounds.items()})

__all__ = ["load_text_dataset", "kjv_verses"]
