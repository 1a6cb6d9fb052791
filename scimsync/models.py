"""Sync state: what the IdP sent per attribute, local edits, the journal, sync runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AttributeState(models.Model):
    """Provenance of one attribute of one provisioned user.

    A row exists once the IdP has sent the attribute or an admin has edited it.
    `idp_received_at` None means "never sent" (a sync leaves the attribute
    alone); a received `idp_value` of None means "sent empty" (a sync clears it).
    `at_risk` is derived (mapped apply=always and current value differs from
    the IdP value) and stored so lists can filter and count it in SQL; it is
    recomputed by every service that changes its inputs.
    """

    # No index of its own: unique_attribute_state (user, attribute) starts with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attribute_states", db_index=False
    )
    attribute = models.CharField(max_length=150)
    idp_value = models.JSONField(null=True, blank=True)
    idp_received_at = models.DateTimeField(null=True, blank=True)
    local_edit_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,  # partial index below
    )
    local_edit_by_label = models.CharField(max_length=150, blank=True)
    local_edit_at = models.DateTimeField(null=True, blank=True)
    local_edit_before = models.JSONField(null=True, blank=True)
    at_risk = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "attribute"], name="unique_attribute_state"),
        ]
        # A user has some twenty of these rows, each written by the POST that provisions it,
        # so every index costs twenty insertions per create. The flags and local edits that
        # lists look for are few: partial indexes hold only those rows, and a push that sets
        # none writes no entry in them (docs/benchmarks.md, "Indexes").
        indexes = [
            # A mapping change reads one attribute of every user of a connection.
            models.Index(fields=["attribute"], name="attribute_state_attr_idx"),
            # At-risk counts per user (lists), per connection (dashboard) and the report.
            models.Index(fields=["user"], condition=models.Q(at_risk=True), name="attribute_state_at_risk_idx"),
            # ON DELETE SET NULL of a local account that made edits.
            models.Index(fields=["local_edit_by"], condition=models.Q(local_edit_by__isnull=False),
                         name="attribute_state_edit_by_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.attribute}"

    @property
    def idp_sent(self) -> bool:
        return self.idp_received_at is not None

    @property
    def has_local_edit(self) -> bool:
        return self.local_edit_at is not None


class JournalEntry(models.Model):
    """One push, sync, local edit, revert or restore of one user, with its changes."""

    class Kind(models.TextChoices):
        PUSH = "push", "IdP push"
        SYNC = "sync", "Deferred sync"
        LOCAL_EDIT = "local_edit", "Local edit"
        REVERT = "revert", "Revert to IdP value"
        RESTORE = "restore", "Restore of a lost edit"
        CREATE = "create", "Provisioned"
        DELETE = "delete", "Deprovisioned"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="journal"
    )
    # Kept when the user is deleted, so the journal outlives a SCIM DELETE.
    user_name = models.CharField(max_length=255)
    connection = models.ForeignKey(
        "mappings.Connection", null=True, on_delete=models.CASCADE, related_name="journal"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What did it: "SCIM PATCH", "sync run 12", "admin alice".
    source = models.CharField(max_length=150)
    # Empty on every push: partial indexes (below) instead of one entry per journal row.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )
    sync_run = models.ForeignKey(
        "SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="journal", db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "journal entries"
        indexes = [
            models.Index(fields=["actor"], condition=models.Q(actor__isnull=False), name="journal_entry_actor_idx"),
            models.Index(fields=["sync_run"], condition=models.Q(sync_run__isnull=False),
                         name="journal_entry_sync_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.user_name} by {self.source}"


class JournalChange(models.Model):
    """One attribute's old and new value within a journal entry.

    `lost_edit` marks a local edit that a sync overwrote; the edit's author and
    time are copied here because the AttributeState forgets them once synced.
    """

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        LOST_EDIT = "lost_edit", "Overwrote a local edit"
        KEPT_LOCAL = "kept_local", "Recorded only; the product's value kept"
        EDITED = "edited", "Edited locally"

    entry = models.ForeignKey(JournalEntry, on_delete=models.CASCADE, related_name="changes")
    attribute = models.CharField(max_length=150)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.APPLIED)
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    lost_edit = models.BooleanField(default=False)
    lost_edit_by_label = models.CharField(max_length=150, blank=True)
    lost_edit_at = models.DateTimeField(null=True, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # Lost edits are a few of the changes: a partial index, which other changes skip.
        indexes = [models.Index(fields=["entry"], condition=models.Q(lost_edit=True), name="journal_change_lost_idx")]


class SyncRun(models.Model):
    """A deferred sync, recorded before it is queued so a broker outage loses nothing."""

    class State(models.TextChoices):
        HELD = "held", "Held for approval"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Reason(models.TextChoices):
        MANUAL = "manual", "Sync now"
        SCHEDULE = "schedule", "Schedule"
        MAPPING_CHANGE = "mapping_change", "Mapping change"
        RETRY = "retry", "Retry"

    connection = models.ForeignKey(
        "mappings.Connection", on_delete=models.CASCADE, related_name="sync_runs"
    )
    # Empty means the whole connection.
    user_ids = models.JSONField(default=list, blank=True)
    # Set: the run recomputes this attribute's at-risk flags after its mapping changed
    # and overwrites nothing (scimsync.sync.services.users_recompute_flags). Empty: a sync.
    attribute = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.MANUAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED, db_index=True)
    users_total = models.PositiveIntegerField(default=0)
    users_done = models.PositiveIntegerField(default=0)
    attributes_overwritten = models.PositiveIntegerField(default=0)
    lost_edits = models.PositiveIntegerField(default=0)
    # Of a flag recompute: users whose attribute became at risk, and whose flag cleared.
    flags_raised = models.PositiveIntegerField(default=0)
    flags_cleared = models.PositiveIntegerField(default=0)
    # The last user primary key synced: a resumed run continues after it.
    checkpoint = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    # Users the run would overwrite when it was created: above the configured share
    # of the connection the run is HELD until an admin approves it.
    users_at_risk = models.PositiveIntegerField(default=0)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # When it last entered QUEUED: the sweep re-sends runs queued too long ago.
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Renewed after every batch; a RUNNING run whose heartbeat is older than the
    # lease was left by a dead worker and may be taken over.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Letting a held run overwrite many users' local values is its own right,
        # apart from asking for a sync (users.sync_user).
        permissions = [("approve_syncrun", "Can approve a held sync run")]

    def __str__(self) -> str:
        what = f"flag recompute of {self.attribute}" if self.recomputes_flags else "Sync run"
        return f"{what[0].upper()}{what[1:]} {self.pk} ({self.get_state_display()})"

    @property
    def recomputes_flags(self) -> bool:
        return bool(self.attribute)


class ScimRequestLogQuerySet(models.QuerySet):
    WRITES = ("POST", "PUT", "PATCH", "DELETE")
    # POST /.search is a read sent as a POST (RFC 7644 §3.4.3).
    _WRITE = models.Q(method__in=WRITES) & ~models.Q(path__endswith="/.search")

    def pushes(self):
        """What the IdP sent that changed something: writes that succeeded."""
        return self.filter(self._WRITE, status__lt=400)

    def failed_pushes(self):
        """Writes the server refused or failed, and any server error. A GET of an id
        that is gone (404) is how an IdP finds out, not a failure of the connection, and
        so is a 501 for an endpoint it probes that is not offered (/Me)."""
        return self.filter((self._WRITE & models.Q(status__gte=400))
                           | (models.Q(status__gte=500) & ~models.Q(status=501)))


class ScimRequestLog(models.Model):
    """One SCIM write (or failed request) of a connection, decoded per attribute.

    Reads are not logged: Entra reads before every write, and a row per read
    would double the database writes of a sync cycle for little insight.
    """

    # No index of its own: (connection, created_at) below starts with it.
    connection = models.ForeignKey(
        "mappings.Connection", null=True, on_delete=models.CASCADE, related_name="request_log", db_index=False
    )
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    detail = models.TextField(blank=True)
    # [{"attribute": "title", "value": "Analyst", "outcome": "applied" | "kept_local" | "applied_on_create" |
    #   "not_in_catalogue" | "overwrote_local_edit" (then also "local_edit_by": whose edit was lost)}]
    decoded = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScimRequestLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "created_at"])]

    @property
    def failed(self) -> bool:
        return self.status >= 400


class AtRiskAttribute(AttributeState):
    """The at-risk report in the admin: AttributeState rows flagged at risk."""

    class Meta:
        proxy = True
        verbose_name = "at-risk attribute"
        verbose_name_plural = "at-risk report"


class LostEdit(JournalChange):
    """Journal changes that overwrote a local edit, restorable from the admin."""

    class Meta:
        proxy = True
        verbose_name = "lost edit"
        verbose_name_plural = "lost edits"


from scimsync.api.models import ApiKey  # noqa: E402,F401
