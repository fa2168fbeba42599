"""Data in CRFsuite's attribute format, and CRF++ column data expanded into it.

Both tools must train on identical attributes. CRFsuite's files escape ``:``
and ``\\`` inside names (``\\:``, ``\\\\``) because ``NAME:VALUE`` gives an
attribute a weight; python-crfsuite takes the names unescaped. Sequences are
kept as ``(attributes per item, labels)`` with raw names.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

# An item's attributes: names (each weighing 1), or names with their values.
Item = list[str] | dict[str, float]
Sequence = tuple[list[Item], list[str]]

_MACRO = re.compile(r"%x\[\s*(-?\d+)\s*,\s*(\d+)\s*\]")


def escape(name: str) -> str:
    """A name as CRFsuite's data format writes it (``\\`` and ``:`` escaped)."""
    return name.replace("\\", "\\\\").replace(":", "\\:")


_ESCAPE_OR_COLON = re.compile(r"\\.|:")
_ESCAPED = re.compile(r"\\(.)")


def parse_field(field: str) -> tuple[str, float]:
    """One attribute field: its name (escapes undone) and the value after its last
    unescaped ``:`` (1 when it has none)."""
    if "\\" not in field:
        name, colon, value = field.rpartition(":")
        if not colon:
            return field, 1.0
    else:
        last = None
        for m in _ESCAPE_OR_COLON.finditer(field):
            if m.group() == ":":
                last = m.start()
        if last is None:
            return _ESCAPED.sub(r"\1", field), 1.0
        name, value = _ESCAPED.sub(r"\1", field[:last]), field[last + 1 :]
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"attribute {field!r}: {value!r} after the last ':' is not a number") from None


def read_crfsuite(path: Path) -> Iterator[Sequence]:
    """Sequences of a CRFsuite data file: ``label TAB attr TAB ...``, a blank line after each."""
    items: list[Item] = []
    labels: list[str] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line:
                if items:
                    yield items, labels
                items, labels = [], []
                continue
            fields = line.split("\t")
            if not fields[0]:
                raise ValueError(f"{path}:{number}: empty label")
            try:
                label = _ESCAPED.sub(r"\1", fields[0])
                attrs = [parse_field(a) for a in fields[1:] if a]
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
            labels.append(label)
            if all(v == 1.0 for _, v in attrs):
                items.append([name for name, _ in attrs])
            else:
                items.append(dict(attrs))
    if items:
        yield items, labels


def write_crfsuite(path: Path, sequences: Iterable[Sequence]) -> int:
    """Writes sequences in CRFsuite's format; returns the number written."""
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for items, labels in sequences:
            for attrs, label in zip(items, labels, strict=True):
                if isinstance(attrs, dict):
                    fields = [f"{escape(k)}:{v!r}" for k, v in attrs.items()]
                else:
                    fields = [escape(a) for a in attrs]
                f.write("\t".join([escape(label), *fields]) + "\n")
            f.write("\n")
            n += 1
    tmp.replace(path)
    return n


def read_columns(path: Path) -> list[list[list[str]]]:
    """CRF++ column data: whitespace-separated columns, blank lines between sequences."""
    sequences: list[list[list[str]]] = []
    rows: list[list[str]] = []
    width = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            cols = line.split()
            if not cols:
                if rows:
                    sequences.append(rows)
                rows = []
                continue
            if width is None:
                width = len(cols)
            elif len(cols) != width:
                raise ValueError(f"{path}:{number}: {len(cols)} columns, expected {width}")
            rows.append(cols)
    if rows:
        sequences.append(rows)
    return sequences


def read_template(path: Path) -> list[str]:
    """The unigram (``U``) lines of a CRF++ template; a ``B`` line is the label-pair
    feature CRFsuite always has, so it adds nothing; ``B`` lines with macros are refused."""
    unigrams: list[str] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("U"):
                unigrams.append(line)
            elif line.startswith("B"):
                if _MACRO.search(line):
                    raise ValueError(f"{path}:{number}: bigram macros have no CRFsuite equivalent")
            else:
                raise ValueError(f"{path}:{number}: neither a U nor a B template: {line!r}")
    return unigrams


def expand(template: str, rows: list[list[str]], i: int) -> str:
    """One template expanded at position ``i`` as CRF++ does (``_B-1``, ``_B+1`` outside)."""

    def cell(m: re.Match[str]) -> str:
        r, c = i + int(m.group(1)), int(m.group(2))
        if r < 0:
            return f"_B{r}"
        if r >= len(rows):
            return f"_B+{r - len(rows) + 1}"
        if c >= len(rows[r]) - 1:
            raise ValueError(f"template {template!r} reads column {c}, data has {len(rows[r]) - 1}")
        return rows[r][c]

    return _MACRO.sub(cell, template)


def columns_to_sequences(rows_list: list[list[list[str]]], templates: list[str]) -> list[Sequence]:
    """CRF++ columns (label last) as attribute sequences under the given U templates."""
    return [
        ([[expand(t, rows, i) for t in templates] for i in range(len(rows))], [r[-1] for r in rows])
        for rows in rows_list
    ]


def shuffled(sequences: list[Sequence], seed: int) -> list[Sequence]:
    """The sequences in a shuffled order (Python's Mersenne Twister, seeded)."""
    out = list(sequences)
    random.Random(seed).shuffle(out)
    return out
