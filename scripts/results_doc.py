"""Keeps docs/results.md as a set of sections, each rewritten in place by the script that measured it."""

import re
from pathlib import Path

HEADER = "# Results\n\nEvery table here is written by the script named under it; rerun the command to reproduce it.\n"


def update_section(path: str, key: str, title: str, body: str) -> None:
    """Replace (or append) the section marked `key` in the Markdown file at path."""
    file = Path(path)
    text = file.read_text() if file.exists() else HEADER
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    section = f"{begin}\n## {title}\n\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
