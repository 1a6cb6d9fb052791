"""Helpers every view module uses."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request

from scimsync.api.models import ApiKey
from scimsync.sync.services import Actor


def valid(serializer_class: type[serializers.Serializer], request: Request, **kwargs) -> dict:
    """The request body validated by `serializer_class`, or a 400 with the field errors."""
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def actor(request: Request) -> Actor:
    """The journal's "who": the signed-in admin, or the API key's owner and which key
    ("alice via API key nightly-export"), so an API edit is told apart from one in the admin."""
    person = Actor.person(request.user)
    key = request.auth if isinstance(request.auth, ApiKey) else None
    if key is None:
        return person
    via = f"{person.label} via API key {key.label or key.hint}"
    return Actor(label=via[:150], user=person.user)


def impacts_data(changes, applied: bool, **extra) -> dict:
    """The body of ImpactsSerializer from (attribute, state, apply, MappingImpact) tuples."""
    rows = [{"attribute": a, "state": st, "apply": ap, "now_at_risk": i.now_at_risk,
             "no_longer_at_risk": i.no_longer_at_risk, "sync_run": i.sync_run.pk if i.sync_run else None}
            for a, st, ap, i in changes]
    return {**extra, "changes": rows, "applied": applied,
            "now_at_risk": sum(r["now_at_risk"] for r in rows),
            "no_longer_at_risk": sum(r["no_longer_at_risk"] for r in rows)}
