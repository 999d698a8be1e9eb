"""Generated blocks in Markdown files: the table commands rewrite only what lies between their markers.

A block is

    <!-- begin generated: NAME (by COMMAND; do not edit) -->
    ...
    <!-- end generated: NAME -->

and `replace_block(path, name, text)` swaps its inside for `text`, leaving the rest of the file alone.
"""
from __future__ import annotations

import re
from pathlib import Path


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- begin generated: {re.escape(name)}\b[^\n]*-->\n)(.*?)(<!-- end generated: "
                      rf"{re.escape(name)} -->)", re.S)


def replace_block(path: Path, name: str, text: str) -> None:
    """Replace the inside of block `name` in `path` with `text`; ValueError when the file has no such block."""
    doc = path.read_text(encoding="utf-8")
    pattern = _pattern(name)
    if not pattern.search(doc):
        raise ValueError(f"{path}: no '<!-- begin generated: {name} ...-->' ... '<!-- end generated: {name} -->' "
                         "block to replace")
    new = pattern.sub(lambda m: m.group(1) + text.rstrip("\n") + "\n" + m.group(3), doc, count=1)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)


def read_block(path: Path, name: str) -> str | None:
    """The inside of block `name` in `path`, or None when there is none."""
    m = _pattern(name).search(path.read_text(encoding="utf-8"))
    return None if m is None else m.group(2)
