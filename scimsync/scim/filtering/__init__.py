"""SCIM 2.0 filters (RFC 7644 §3.4.2.2): parse once, then run in SQL or in Python.

    node = parse_filter('emails[type eq "work"].value co "@example.com"')
    User.objects.filter(users_q(node))      # list and count in the database
    evaluate(node, resource_json)           # one document, e.g. after a PATCH
"""

from .ast import FilterError
from .evaluate import evaluate, matches_entry
from .parser import parse_filter
from .to_q import groups_q, users_q

__all__ = ["FilterError", "evaluate", "groups_q", "matches_entry", "parse_filter", "users_q"]
