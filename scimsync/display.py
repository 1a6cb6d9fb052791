"""How values and times read on admin pages: one way everywhere."""

from __future__ import annotations

from django.utils import timezone


def show_value(value, *, empty: str = "—", separator: str = ", ") -> str:
    """An attribute value for a person: `empty` for none, an address as `key: value` pairs."""
    if value is None:
        return empty
    if isinstance(value, dict):
        return separator.join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def show_time(at) -> str:
    """A moment as "2026-12-04 05:31 UTC" (the zone named, as next-sync times are)."""
    if at is None:
        return "—"
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M %Z")
