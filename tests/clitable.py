"""Read a table as the `shoal` CLI prints it (plain text, columns two or more spaces apart, each cell
starting under its header) back into rows of cells by header."""

from __future__ import annotations

import re


def parse_table(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the table in ``text`` whose header line starts with ``first_header`` (lines before it,
    a title, are skipped), each as ``{header: cell}``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_header.split()[0]])
    header = lines[start]
    # A header may have spaces of its own ("prep exit"): headers are two or more spaces apart.
    spans = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = {}
        for n, (at, name) in enumerate(spans):
            end = spans[n + 1][0] if n + 1 < len(spans) else len(line)
            cells[name] = line[at:end].strip()
        rows.append(cells)
    return rows
