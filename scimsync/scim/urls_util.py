"""Absolute URLs for meta.location, right behind a TLS-terminating proxy when told so.

SCIMSYNC_BEHIND_TLS_PROXY=true makes Django trust X-Forwarded-Proto/Host (settings.py).
"""

from __future__ import annotations


def base_location(request=None) -> str:
    if request is None:
        return ""
    return f"{request.scheme}://{request.get_host()}"
