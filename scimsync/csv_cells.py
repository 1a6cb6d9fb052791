"""CSV cells that a spreadsheet shows as text, never runs as a formula.

The at-risk exports carry values an IdP sent; a value such as `=HYPERLINK(...)`
would otherwise become a live formula in whoever opens the file (OWASP: CSV
injection). Such a cell gets a leading apostrophe, which spreadsheets hide.
"""

from __future__ import annotations

from collections.abc import Iterable

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def safe_row(values: Iterable) -> list[str]:
    return [safe_cell(v) for v in values]
