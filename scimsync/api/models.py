"""API keys: credentials for automation on /api/, distinct from SCIM tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKeyQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiKey(models.Model):
    """A key for the management API, acting as its owner with the owner's admin permissions.

    Only the SHA-256 digest is stored; like a SCIM token, the key is 256 random
    bits, so a fast digest is enough. The scope can only narrow what the owner
    may do: a read-only key of a superuser still cannot write. SCIM tokens and
    API keys live in different tables with different prefixes, so neither
    works on the other's surface.
    """

    PREFIX = "sk_"

    class Scope(models.TextChoices):
        READ_ONLY = "read_only", "Read only"
        READ_WRITE = "read_write", "Read and write"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ_ONLY)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, so an admin can tell keys apart.
    hint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        app_label = "scimsync"
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.hint}… ({self.owner})"

    @staticmethod
    def digest_of(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode()).hexdigest()

    @classmethod
    def new_plaintext(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @property
    def allows_writes(self) -> bool:
        return self.scope == self.Scope.READ_WRITE

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
