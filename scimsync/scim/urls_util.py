"""Absolute URLs for meta.location, right behind a TLS-terminating proxy when told so.

SCIMSYNC_BEHIND_TLS_PROXY=true makes Django trust X-Forwarded-Proto/Host (settings.py).
"""

from __future__ import annotations


def base_location(request=None) -> str:
    """scheme://host of the request, worked out once per request (get_host() checks
    ALLOWED_HOSTS, and a page of 100 users needs a location for each and their groups)."""
    if request is None:
        return ""
    base = request.__dict__.get("_scim_base_location")
    if base is None:
        base = request.__dict__["_scim_base_location"] = f"{request.scheme}://{request.get_host()}"
    return base
