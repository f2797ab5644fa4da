"""Client and site names in Chinese, Japanese or Korean take two columns a character on a
terminal: the table's columns stay aligned (tabulate measures them with wcwidth)."""

from __future__ import annotations

import unicodedata

from fleet.report.table import render_table

from .test_reports import fixed_sweep


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def test_a_cjk_client_name_keeps_the_table_aligned() -> None:
    result = fixed_sweep()
    first = result.sites[0].model_copy(update={"client": "東京歯科クリニック"})
    result = result.model_copy(update={"sites": [first, *result.sites[1:]]})
    table = render_table(result)
    block = next(b for b in table.split("\n\n") if "東京歯科クリニック" in b)
    lines = [line for line in block.splitlines() if line.strip()]
    rule = next(line for line in lines if set(line) <= {"-", " "})
    # every row ends where the rule under the headers ends, and each column starts where
    # its rule does
    starts = [i for i, c in enumerate(rule) if c == "-" and (i == 0 or rule[i - 1] == " ")]
    for line in lines:
        assert display_width(line.rstrip()) <= len(rule), line
        # the line as the terminal shows it: a wide character fills two columns
        shown = "".join(c + ("\0" if display_width(c) == 2 else "") for c in line)
        for start in starts[1:]:
            assert start > len(shown) or shown[start - 1] == " ", (line, start)
