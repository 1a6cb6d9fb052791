"""Connections, their tokens, and per-connection attribute mappings."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone


def _default_cadence():
    return settings.SCIMSYNC["DEFAULT_CADENCE"]


class Connection(models.Model):
    """One IdP pushing users and groups over SCIM, with its own tokens and mappings."""

    class Preset(models.TextChoices):
        GENERIC = "generic", "Generic SCIM 2.0"
        ENTRA = "entra", "Microsoft Entra ID"
        OKTA = "okta", "Okta"

    name = models.CharField(max_length=100, unique=True)
    preset = models.CharField(max_length=20, choices=Preset.choices, default=Preset.GENERIC)
    sync_cadence = models.DurationField(
        default=_default_cadence,
        help_text="How often the IdP is expected to push (Entra: every 40 minutes).",
    )
    sync_schedule = models.DurationField(
        null=True, blank=True,
        help_text="Run a deferred sync of the whole connection this often (empty: no schedule). "
        "It makes the IdP values win between pushes.",
    )
    last_scheduled_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_push_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        permissions = [("manage_tokens", "Can create and revoke SCIM tokens")]

    def __str__(self) -> str:
        return self.name


class ScimTokenQuerySet(models.QuerySet):
    def usable(self):
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ScimToken(models.Model):
    """A bearer token of a connection. Only its SHA-256 digest is stored.

    Tokens are 256-bit random strings, so a fast digest is enough: there is
    nothing to brute-force, and a slow hash would cost every SCIM request.
    """

    PREFIX = "scim_"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tokens")
    label = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, shown in the admin so an admin can tell tokens apart.
    hint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ScimTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "SCIM token"  # Django's default would say "scim token"

    def __str__(self) -> str:
        return f"{self.hint}… ({self.connection})"

    @staticmethod
    def digest_of(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode()).hexdigest()

    @classmethod
    def new_plaintext(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class AttributeMapping(models.Model):
    """Whether the IdP of a connection owns one attribute, and how it applies.

    Missing rows never occur for built-in attributes: a connection gets one row
    per catalogue attribute from its preset when it is created.
    """

    class State(models.TextChoices):
        MAPPED = "mapped", "Mapped (IdP owns it)"
        UNMAPPED = "unmapped", "Unmapped (the product owns it)"

    class Apply(models.TextChoices):
        ALWAYS = "always", "Always: every sync overwrites"
        ON_CREATE = "on_create", "On create: seeds a new user only"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="mappings")
    attribute = models.CharField(max_length=150)
    state = models.CharField(max_length=10, choices=State.choices, default=State.MAPPED)
    apply = models.CharField(max_length=10, choices=Apply.choices, default=Apply.ALWAYS)
    updated_at = models.DateTimeField(auto_now=True)
    # When this connection's IdP first sent the attribute, for any user ("observed
    # from IdP"); None: never. Set by the sync engine, mapped or not.
    observed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "attribute"], name="unique_mapping"),
        ]
        ordering = ["connection", "id"]

    def __str__(self) -> str:
        return f"{self.connection}: {self.attribute} {self.owner_label}"

    @property
    def overwrites_on_sync(self) -> bool:
        return self.state == self.State.MAPPED and self.apply == self.Apply.ALWAYS

    @property
    def owner_label(self) -> str:
        if self.state == self.State.UNMAPPED:
            return "local"
        return "IdP" if self.apply == self.Apply.ALWAYS else "IdP on create"


class MappingChange(models.Model):
    """Audit of one mapping change: who, when, before, after."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="mapping_changes")
    attribute = models.CharField(max_length=150)
    before = models.CharField(max_length=40)
    after = models.CharField(max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    users_now_at_risk = models.PositiveIntegerField(default=0)
    users_no_longer_at_risk = models.PositiveIntegerField(default=0)
    # A connection too large to recompute its flags inside the request gets a run for it;
    # the counts above are filled in when that run finishes.
    sync_run = models.ForeignKey(
        "scimsync.SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="mapping_changes"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]


# RFC 7643 §2.1: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA.
scim_attribute_name = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9_-]*\Z",
    "A SCIM attribute name starts with a letter, then letters, digits, '-' or '_' (RFC 7643 §2.1).",
)


class CustomAttribute(models.Model):
    """An admin-defined attribute under the product's own SCIM extension schema."""

    name = models.CharField(max_length=100, unique=True, validators=[scim_attribute_name],
                            help_text="SCIM attribute name, e.g. badgeNumber")
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"custom:{self.name}"

    def clean(self):
        # SCIM attribute names are case-insensitive (RFC 7643 §2.1): badgeNumber and
        # BadgeNumber would be one attribute to every client.
        taken = CustomAttribute.objects.filter(name__iexact=self.name).exclude(pk=self.pk)
        if self.name and taken.exists():
            raise ValidationError({"name": f"{taken.first().name!r} exists already; SCIM names ignore case."})
