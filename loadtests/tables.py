"""The tables the load tests print: markdown (capacity, stages), to paste into a report,
and aligned plain text (scaling, sizing), to read in a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """A markdown table; align holds one letter per column: "l" (left) or "r" (right)."""
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns, {len(align)} alignments")
    rule = ["---:" if side == "r" else "---" for side in align]
    return ["| " + " | ".join(row) + " |" for row in (header, rule, *rows)]


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 0, total: bool = False) -> list[str]:
    """Columns two spaces apart, right-aligned but for the first `left` ones, a rule under the
    header and (total) one above the last row."""
    every = (header, *rows)
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) if i < left else cell.rjust(widths[i]) for i, cell in enumerate(row))

    rule = "  ".join("-" * width for width in widths)
    body = [line(row) for row in rows]
    if total and body:
        body.insert(len(body) - 1, rule)
    return [line(header), rule, *body]
