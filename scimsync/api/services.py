"""Writes for API keys: create (the plaintext is returned once), revoke, authenticate."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from scimsync.api.models import ApiKey
from users.models import User


def api_key_create(
    *, owner: User, scope: str = ApiKey.Scope.READ_ONLY, label: str = "", expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key for a local account; the plaintext is returned once and never stored.

    Provisioned users sign in through their IdP (users.auth), so they cannot own
    a key either: a key would outlive their deprovisioning.
    """
    if owner.connection_id is not None:
        raise ValidationError({"owner": "API keys belong to local accounts, not to provisioned users."})
    plaintext = ApiKey.new_plaintext()
    key = ApiKey(
        owner=owner, scope=scope, label=label, expires_at=expires_at,
        digest=ApiKey.digest_of(plaintext), hint=plaintext[: len(ApiKey.PREFIX) + 4],
    )
    key.full_clean()
    key.save()
    return key, plaintext


def api_key_revoke(*, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])


def api_key_authenticate(plaintext: str) -> ApiKey | None:
    """The usable key whose digest matches, with its owner, or None.

    As for SCIM tokens (mappings.services.token_authenticate), the lookup is by
    digest on a unique index and the final comparison is constant-time.
    """
    if not plaintext.startswith(ApiKey.PREFIX):
        return None
    digest = ApiKey.digest_of(plaintext)
    key = ApiKey.objects.usable().select_related("owner").filter(digest=digest).first()
    if key is None or not hmac.compare_digest(key.digest, digest):
        return None
    now = timezone.now()
    # A write per request would double the cost of reads; a minute's precision is plenty.
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
