"""Users and groups: local accounts and the people an IdP provisions."""

from __future__ import annotations

import unicodedata
import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone as dj_timezone


def name_key(value: str) -> str:
    """The form in which userNames and group names are compared for uniqueness.

    RFC 7643 §4.1.1 makes userName case-insensitive; NFC folds the two Unicode
    spellings of "é" into one, so they cannot be two users either.
    """
    return unicodedata.normalize("NFC", value).casefold()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, user_name: str) -> User:
        # Sign-in names are only unique among local accounts; provisioned users
        # of different connections may share one.
        return self.get(user_name_key=name_key(user_name), connection__isnull=True)

    def create_user(self, user_name: str, password: str | None = None, **extra) -> User:
        user = self.model(user_name=user_name, **extra)
        user.set_password(password)
        user.save()
        return user

    def create_superuser(self, user_name: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(user_name, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: a local account (no connection) or a user provisioned by one connection.

    The profile columns hold the product's current values, local edits included.
    What the IdP last sent for each attribute lives in scimsync.AttributeState;
    the columns follow mappings.catalogue, one column per built-in attribute.
    """

    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    connection = models.ForeignKey(
        "mappings.Connection", null=True, blank=True, on_delete=models.PROTECT,
        related_name="users",
        help_text="The IdP connection that provisions this user; empty for local accounts.",
    )
    user_name = models.CharField("userName", max_length=255)
    user_name_key = models.CharField(max_length=255, editable=False, db_index=True)
    external_id = models.CharField("externalId", max_length=255, blank=True, db_index=True)
    is_active = models.BooleanField("active", default=True)
    is_staff = models.BooleanField(default=False)

    display_name = models.CharField("displayName", max_length=255, blank=True)
    given_name = models.CharField("name.givenName", max_length=255, blank=True)
    family_name = models.CharField("name.familyName", max_length=255, blank=True)
    middle_name = models.CharField("name.middleName", max_length=255, blank=True)
    formatted_name = models.CharField("name.formatted", max_length=512, blank=True)
    honorific_prefix = models.CharField("name.honorificPrefix", max_length=64, blank=True)
    honorific_suffix = models.CharField("name.honorificSuffix", max_length=64, blank=True)
    nick_name = models.CharField("nickName", max_length=255, blank=True)
    profile_url = models.CharField("profileUrl", max_length=1024, blank=True)
    title = models.CharField("title", max_length=255, blank=True)
    user_type = models.CharField("userType", max_length=255, blank=True)
    preferred_language = models.CharField("preferredLanguage", max_length=64, blank=True)
    locale = models.CharField("locale", max_length=64, blank=True)
    timezone = models.CharField("timezone", max_length=64, blank=True)

    email_work = models.CharField("work email", max_length=320, blank=True, db_index=True)
    email_home = models.CharField("home email", max_length=320, blank=True)
    email_other = models.CharField("other email", max_length=320, blank=True)
    phone_work = models.CharField("work phone", max_length=64, blank=True)
    phone_mobile = models.CharField("mobile phone", max_length=64, blank=True)
    phone_home = models.CharField("home phone", max_length=64, blank=True)
    phone_fax = models.CharField("fax", max_length=64, blank=True)
    phone_other = models.CharField("other phone", max_length=64, blank=True)
    address_work = models.JSONField("work address", null=True, blank=True)
    address_home = models.JSONField("home address", null=True, blank=True)

    employee_number = models.CharField("employeeNumber", max_length=255, blank=True)
    cost_center = models.CharField("costCenter", max_length=255, blank=True)
    organization = models.CharField("organization", max_length=255, blank=True)
    division = models.CharField("division", max_length=255, blank=True)
    department = models.CharField("department", max_length=255, blank=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )

    custom_attributes = models.JSONField(default=dict, blank=True)
    # What the IdP sent that the catalogue does not model, kept as sent so a GET
    # returns it: sub-attributes of typed entries (primary, display), entries of
    # other types, unknown extensions. IdP-owned, never edited locally.
    scim_extras = models.JSONField(default=dict, blank=True)

    date_joined = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped on every change; the SCIM weak ETag (meta.version).
    version = models.PositiveIntegerField(default=1)

    objects = UserManager()

    USERNAME_FIELD = "user_name"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "user_name_key"], name="unique_username_per_connection"
            ),
            models.UniqueConstraint(
                fields=["user_name_key"], condition=models.Q(connection__isnull=True),
                name="unique_local_username",
            ),
        ]
        indexes = [
            # A SCIM list page past the first picks its ids from this index alone
            # (an index-only scan), whatever the offset; see scimsync.scim.views.
            models.Index(fields=["connection", "id"], name="user_connection_id_idx"),
        ]
        permissions = [
            ("sync_user", "Can sync users now"),
            ("revert_user_attribute", "Can revert a local edit to the IdP value"),
        ]

    def __str__(self) -> str:
        return self.user_name

    def save(self, *args, **kwargs):
        self.user_name_key = name_key(self.user_name)
        super().save(*args, **kwargs)

    @property
    def is_provisioned(self) -> bool:
        return self.connection_id is not None

    def get_full_name(self) -> str:
        return self.display_name or " ".join(p for p in (self.given_name, self.family_name) if p)

    def get_short_name(self) -> str:
        return self.given_name or self.user_name


class UserPageBucket(models.Model):
    """How many of a connection's users have an id in one range: an index of positions.

    A SCIM list page is addressed by position (`startIndex`), and with OFFSET
    PostgreSQL walks every user before it, so a page deep into 100,000 users and
    the `totalResults` COUNT cost as much as the table. These rows let
    users.page_index find the position in the small table instead: the sum of
    every bucket is the connection's total, and a page starts at most one bucket
    (1,024 ids) past the first id of its bucket.

    Database triggers (migration users.0004) keep the rows in step with every
    insert and delete of a provisioned user, whichever code path makes it. Each
    database session adds to its own `shard` row of a bucket, so concurrent
    creates in one connection do not queue on one row lock; a bucket's count is
    the sum of its shards (one of which may be negative).
    """

    connection = models.ForeignKey("mappings.Connection", on_delete=models.CASCADE, related_name="+")
    # The smallest user id the bucket covers: ids from here to here + 1,023.
    first_id = models.BigIntegerField()
    shard = models.SmallIntegerField(default=0)
    users = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "first_id", "shard"], name="unique_user_page_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.first_id}+{self.shard}={self.users}"


class Group(models.Model):
    """A group provisioned by one connection, with members of that connection.

    Not django.contrib.auth's Group (permission groups of local accounts): the
    admin index lists both, hence "provisioned group".
    """

    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    connection = models.ForeignKey(
        "mappings.Connection", on_delete=models.PROTECT, related_name="groups"
    )
    display_name = models.CharField("displayName", max_length=255)
    display_name_key = models.CharField(max_length=255, editable=False, db_index=True)
    external_id = models.CharField("externalId", max_length=255, blank=True, db_index=True)
    members = models.ManyToManyField(User, through="GroupMembership", related_name="scim_groups")
    created_at = models.DateTimeField(default=dj_timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = "provisioned group"
        verbose_name_plural = "provisioned groups"
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "display_name_key"], name="unique_group_name_per_connection"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs):
        self.display_name_key = name_key(self.display_name)
        super().save(*args, **kwargs)


class GroupMembership(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "user"], name="unique_group_member"),
        ]


class ExtraEntry(models.Model):
    """An email or phone number the catalogue holds no column for (a type it does not know,
    a second work address, one without a type), so that filters find it in SQL.

    The entry itself is kept as sent in User.scim_extras, which SCIM GET returns; these
    rows are a copy of its values, rewritten by the sync engine whenever those entries
    change (scimsync.sync.services), the way GroupMembership rows serve `groups`.
    """

    PLURALS = ("emails", "phoneNumbers")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="extra_entries")
    plural = models.CharField(max_length=20)
    type = models.CharField(max_length=255, blank=True)
    value = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "plural"], name="extra_entry_user_plural_idx")]

    @classmethod
    def values_of(cls, extras: dict | None) -> list[tuple[str, str, str]]:
        """(plural, type, value) of every filterable entry kept in a user's scim_extras."""
        entries = (extras or {}).get("entries", {})
        return sorted(
            (plural, entry.get("type") or "", entry["value"])
            for plural in cls.PLURALS for entry in entries.get(plural, [])
            if isinstance(entry.get("value"), str)
        )
