"""Input and output shapes of the API. Inputs validate; writes happen in services, never here."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mappings.catalogue import Kind, Slot, get_attribute
from mappings.models import AttributeMapping, Connection, ScimToken, scim_attribute_name
from scimsync.models import AttributeState, JournalChange, JournalEntry, ScimRequestLog, SyncRun
from scimsync.sync.next_sync import next_sync
from scimsync.sync.ownership import Owner
from scimsync.sync.values import read_value
from users.models import User

class Input(serializers.Serializer):
    """A request body, read with JSON types as the schema states them.

    DRF's fields coerce: `"description": 0` becomes "0", `"users": ["5"]` becomes
    [5], `"active": "yes"` True. A script sending the wrong type has a bug, and
    the schema promises it a 400 for it, so the type is checked before the field
    converts the value.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {name: [message] for name, field in self.fields.items()
                      if not field.read_only and name in data
                      and (message := _type_error(field, data[name])) is not None}
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def _json_type(field) -> tuple[type, ...] | None:
    """The JSON type a field accepts (bool is no int here), or None for any."""
    if isinstance(field, serializers.BooleanField):
        return (bool,)
    if isinstance(field, (serializers.IntegerField, serializers.PrimaryKeyRelatedField)):
        return (int,)
    if isinstance(field, (serializers.CharField, serializers.ChoiceField, serializers.DurationField,
                          serializers.DateTimeField)):
        return (str,)
    if isinstance(field, (serializers.ListField, serializers.ListSerializer)):
        return (list,)
    return None


def _type_error(field, value) -> str | None:
    if value is None:
        return None  # the field's own allow_null decides
    expected = _json_type(field)
    if expected is None:
        return None
    if isinstance(value, bool) and bool not in expected or not isinstance(value, expected):
        return f"Must be a JSON {({bool: 'boolean', int: 'integer', str: 'string', list: 'array'})[expected[0]]}."
    if isinstance(field, serializers.ListField):
        for item in value:
            if (message := _type_error(field.child, item)) is not None:
                return f"Each item: {message[0].lower()}{message[1:]}"
    return None


STATES = AttributeMapping.State.choices
APPLIES = AttributeMapping.Apply.choices
OWNERS = [(o.value, o.label) for o in Owner]


class NextSyncSerializer(serializers.Serializer):
    """DESIGN.md "Next sync": `expected` when it is an estimate from the IdP's cadence."""

    at = serializers.DateTimeField()
    expected = serializers.BooleanField()


def next_sync_data(connection: Connection | None) -> dict | None:
    upcoming = next_sync(connection) if connection is not None else None
    return NextSyncSerializer(upcoming).data if upcoming else None


# --- connections and tokens ---------------------------------------------------


class ConnectionSerializer(serializers.ModelSerializer):
    next_sync = serializers.SerializerMethodField()
    users_count = serializers.IntegerField(read_only=True)
    at_risk_users_count = serializers.IntegerField(read_only=True, help_text="Users with at least one attribute at risk.")

    class Meta:
        model = Connection
        fields = ["id", "name", "preset", "sync_cadence", "sync_schedule", "last_push_at",
                  "last_scheduled_sync_at", "next_sync", "users_count", "at_risk_users_count", "created_at"]
        read_only_fields = fields

    @extend_schema_field(NextSyncSerializer(allow_null=True))
    def get_next_sync(self, connection):
        return next_sync_data(connection)


class ConnectionCreateSerializer(Input):
    name = serializers.CharField(max_length=100)
    preset = serializers.ChoiceField(choices=Connection.Preset.choices, default=Connection.Preset.GENERIC)
    sync_cadence = serializers.DurationField(
        required=False, min_value=timedelta(minutes=1),
        help_text="How often the IdP pushes, e.g. `00:40:00` or `PT40M`; default: the product's default cadence.",
    )


class CadenceSerializer(Input):
    sync_cadence = serializers.DurationField(min_value=timedelta(minutes=1),
                                             help_text="How often the IdP is expected to push.")
    sync_schedule = serializers.DurationField(
        min_value=timedelta(minutes=1), allow_null=True, required=False,
        help_text="Run a deferred sync of the whole connection this often; null: no schedule.",
    )


class PresetSerializer(Input):
    preset = serializers.ChoiceField(choices=Connection.Preset.choices)


class ScimTokenSerializer(serializers.ModelSerializer):
    usable = serializers.BooleanField(source="is_usable", read_only=True)

    class Meta:
        model = ScimToken
        fields = ["id", "connection", "label", "hint", "created_at", "last_used_at", "expires_at", "revoked_at",
                  "usable"]
        read_only_fields = fields


class ScimTokenCreateSerializer(Input):
    label = serializers.CharField(max_length=100, required=False, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ScimTokenCreatedSerializer(ScimTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The bearer token. Shown once: only its digest is kept.")

    class Meta(ScimTokenSerializer.Meta):
        fields = [*ScimTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


# --- catalogue and mappings ---------------------------------------------------


class CatalogueEntrySerializer(serializers.Serializer):
    short_name = serializers.CharField(source="attribute.short_name")
    scim_path = serializers.CharField(source="attribute.scim_path")
    kind = serializers.ChoiceField(source="attribute.kind", choices=[k.value for k in Kind])
    slot = serializers.ChoiceField(source="attribute.slot", choices=[s.value for s in Slot])
    always_idp = serializers.BooleanField(source="attribute.always_idp",
                                          help_text="userName, externalId, active: the IdP's for every provisioned user.")
    custom = serializers.BooleanField(source="attribute.is_custom")
    description = serializers.CharField()


class CustomAttributeCreateSerializer(Input):
    name = serializers.CharField(max_length=100, validators=[scim_attribute_name],
                                 help_text="SCIM attribute name, e.g. badgeNumber (RFC 7643 §2.1).")
    description = serializers.CharField(max_length=255, required=False, default="")


class MappingSerializer(serializers.Serializer):
    attribute = serializers.CharField(source="attribute.short_name")
    scim_path = serializers.CharField(source="attribute.scim_path")
    state = serializers.ChoiceField(choices=STATES)
    apply = serializers.ChoiceField(choices=APPLIES)
    owner = serializers.ChoiceField(choices=OWNERS)
    editable = serializers.BooleanField()
    updated_at = serializers.DateTimeField(allow_null=True)
    observed_at = serializers.DateTimeField(
        allow_null=True, help_text="When this connection's IdP first sent the attribute; null: never.")


def validate_mappable(name: str) -> str:
    try:
        attribute = get_attribute(name)
    except KeyError:
        raise serializers.ValidationError(f"{name!r} is not in the attribute catalogue.") from None
    if attribute.always_idp:
        raise serializers.ValidationError(f"{name} is always owned by the IdP.")
    return name


class MappingChangeSerializer(Input):
    state = serializers.ChoiceField(choices=STATES)
    apply = serializers.ChoiceField(choices=APPLIES, default=AttributeMapping.Apply.ALWAYS)


class NamedMappingChangeSerializer(MappingChangeSerializer):
    attribute = serializers.CharField(validators=[validate_mappable])


class MappingChangesSerializer(Input):
    changes = NamedMappingChangeSerializer(many=True, allow_empty=False, max_length=500)

    def validate_changes(self, changes):
        names = [c["attribute"] for c in changes]
        if len(names) != len(set(names)):
            raise serializers.ValidationError("Each attribute may appear once.")
        return changes


class ImpactSerializer(serializers.Serializer):
    attribute = serializers.CharField()
    state = serializers.ChoiceField(choices=STATES)
    apply = serializers.ChoiceField(choices=APPLIES)
    now_at_risk = serializers.IntegerField(help_text="Users whose value of this attribute becomes at risk.")
    no_longer_at_risk = serializers.IntegerField(help_text="Users whose flag on this attribute clears.")
    sync_run = serializers.IntegerField(
        allow_null=True, help_text="Of a connection too large to move its flags in the request "
        "(SCIMSYNC_INLINE_RECOMPUTE_MAX_USERS): the sync run that moves them; the counts are then 0 "
        "and the run's flags_raised / flags_cleared tell. Null otherwise, and on a preview.")


class ImpactsSerializer(serializers.Serializer):
    changes = ImpactSerializer(many=True)
    now_at_risk = serializers.IntegerField(help_text="Flags raised, summed over the attributes.")
    no_longer_at_risk = serializers.IntegerField(help_text="Flags cleared, summed over the attributes.")
    applied = serializers.BooleanField(help_text="False for a preview, which changes nothing.")


class PresetImpactsSerializer(ImpactsSerializer):
    preset = serializers.ChoiceField(choices=Connection.Preset.choices)


# --- users and their attributes -----------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    connection_name = serializers.CharField(source="connection.name", allow_null=True, read_only=True)
    at_risk_count = serializers.IntegerField(read_only=True)
    at_risk_attributes = serializers.SerializerMethodField()
    next_sync = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "scim_id", "user_name", "display_name", "email_work", "external_id", "connection",
                  "connection_name", "is_active", "is_staff", "at_risk_count", "at_risk_attributes", "next_sync",
                  "date_joined", "updated_at"]
        read_only_fields = fields

    def get_at_risk_attributes(self, user) -> list[str]:
        return [s.attribute for s in getattr(user, "at_risk_states", ())]

    @extend_schema_field(NextSyncSerializer(allow_null=True))
    def get_next_sync(self, user):
        return next_sync_data(user.connection)


class AttributeRowSerializer(serializers.Serializer):
    """One attribute of one user, as the admin's user page shows it."""

    attribute = serializers.CharField(source="attribute.short_name")
    scim_path = serializers.CharField(source="attribute.scim_path")
    owner = serializers.ChoiceField(choices=OWNERS)
    current = serializers.JSONField(help_text="The product's value, local edits included; null: no value.")
    idp_sent = serializers.BooleanField(help_text="False: the IdP never sent it, and a sync leaves it alone.")
    idp_value = serializers.JSONField(help_text="What the IdP last sent; null when sent empty or never sent.")
    idp_received_at = serializers.DateTimeField(allow_null=True)
    at_risk = serializers.BooleanField(help_text="Mapped, and the next sync will overwrite the current value.")
    overwritten_at = serializers.SerializerMethodField(help_text="When at risk: the next sync's time.")
    local_edit_by = serializers.CharField()
    local_edit_at = serializers.DateTimeField(allow_null=True)
    local_edit_before = serializers.JSONField(help_text="The value before the local edit.")
    observed_from_idp = serializers.BooleanField(
        help_text="The connection's IdP has sent this attribute, for this user or another.")

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_overwritten_at(self, row):
        upcoming = self.context.get("next_sync")
        return serializers.DateTimeField().to_representation(upcoming.at) if row.at_risk and upcoming else None


class UserDetailSerializer(UserSerializer):
    attributes = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "version", "attributes"]
        read_only_fields = fields

    @extend_schema_field(AttributeRowSerializer(many=True))
    def get_attributes(self, user):
        return AttributeRowSerializer(self.context["rows"], many=True, context=self.context).data


class LocalEditSerializer(Input):
    value = serializers.JSONField(help_text="The new value: a string, a boolean (active), an address object, "
                                            "the manager's SCIM id, or null to clear it.")


# --- the at-risk report, the journal, lost edits ------------------------------


class AtRiskRowSerializer(serializers.ModelSerializer):
    """One at-risk attribute: the value the next sync will replace, and by what."""

    user = serializers.IntegerField(source="user_id")
    scim_id = serializers.UUIDField(source="user.scim_id")
    user_name = serializers.CharField(source="user.user_name")
    connection = serializers.IntegerField(source="user.connection_id")
    connection_name = serializers.CharField(source="user.connection.name")
    scim_path = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()
    overwritten_at = serializers.SerializerMethodField(help_text="The next sync's time, when known.")

    class Meta:
        model = AttributeState
        fields = ["id", "user", "scim_id", "user_name", "connection", "connection_name", "attribute", "scim_path",
                  "current", "idp_value", "idp_received_at", "local_edit_by_label", "local_edit_at",
                  "local_edit_before", "overwritten_at"]
        read_only_fields = fields

    def _attribute(self, state):
        # The catalogue is read once per page (custom attributes are rows), not once per row.
        return self.context["catalogue"][state.attribute]

    def get_scim_path(self, state) -> str:
        return self._attribute(state).scim_path

    @extend_schema_field(serializers.JSONField())
    def get_current(self, state):
        return read_value(state.user, self._attribute(state))

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_overwritten_at(self, state):
        upcoming = next_sync(state.user.connection)
        return serializers.DateTimeField().to_representation(upcoming.at) if upcoming else None


class JournalChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = JournalChange
        fields = ["id", "attribute", "outcome", "old_value", "new_value", "lost_edit", "lost_edit_by_label",
                  "lost_edit_at", "restored_at"]
        read_only_fields = fields


class JournalEntrySerializer(serializers.ModelSerializer):
    changes = JournalChangeSerializer(many=True, read_only=True)

    class Meta:
        model = JournalEntry
        fields = ["id", "created_at", "kind", "source", "actor", "user", "user_name", "connection", "sync_run",
                  "changes"]
        read_only_fields = fields


class LostEditSerializer(serializers.ModelSerializer):
    """A value a sync overwrote: `old_value` was lost, `new_value` is the IdP's."""

    user = serializers.IntegerField(source="entry.user_id", allow_null=True)
    user_name = serializers.CharField(source="entry.user_name")
    connection = serializers.IntegerField(source="entry.connection_id", allow_null=True)
    lost_at = serializers.DateTimeField(source="entry.created_at")
    source = serializers.CharField(source="entry.source")

    class Meta:
        model = JournalChange
        fields = ["id", "user", "user_name", "connection", "attribute", "old_value", "new_value",
                  "lost_edit_by_label", "lost_edit_at", "lost_at", "source", "restored_at"]
        read_only_fields = fields


# --- the decoded SCIM request log -----------------------------------------------

DECODED_OUTCOMES = [
    ("applied", "IdP-owned: written to the user"),
    ("kept_local", "Product-owned: recorded as the IdP value only"),
    ("applied_on_create", "Seeded a new user (apply on_create)"),
    ("not_in_catalogue", "Received, not in the catalogue: kept as sent"),
    ("overwrote_local_edit", "IdP-owned: the IdP value written over a local edit, journaled as a lost edit"),
]


class DecodedAttributeSerializer(serializers.Serializer):
    attribute = serializers.CharField(help_text="A catalogue short name, or the SCIM name of what is not in it.")
    value = serializers.JSONField(help_text="The value as the catalogue reads it; null: sent empty.")
    outcome = serializers.ChoiceField(choices=DECODED_OUTCOMES)
    local_edit_by = serializers.CharField(
        required=False, help_text="Of `overwrote_local_edit`: who made the local edit the push overwrote.")


class RequestLogSerializer(serializers.ModelSerializer):
    """One SCIM write of the connection (or a failed request), decoded per attribute, as the admin shows it."""

    failed = serializers.BooleanField(read_only=True)
    decoded = DecodedAttributeSerializer(many=True, read_only=True)

    class Meta:
        model = ScimRequestLog
        fields = ["id", "created_at", "method", "path", "status", "failed", "detail", "decoded"]
        read_only_fields = fields


# --- sync runs ----------------------------------------------------------------


class SyncRunSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField(help_text="users_done / users_total, from 0 to 1.")

    class Meta:
        model = SyncRun
        fields = ["id", "connection", "user_ids", "attribute", "reason", "state", "requested_by", "approved_by",
                  "users_total", "users_done", "progress", "users_at_risk", "attributes_overwritten",
                  "lost_edits", "flags_raised", "flags_cleared", "error", "created_at", "started_at",
                  "finished_at"]
        extra_kwargs = {"attribute": {"help_text": "Set on a flag recompute after a mapping change (it "
                                                   "overwrites nothing); empty on a sync."}}
        read_only_fields = fields

    def get_progress(self, run) -> float:
        if run.state == SyncRun.State.SUCCEEDED:
            return 1.0
        return min(run.users_done / run.users_total, 1.0) if run.users_total else 0.0


class DryRunRowSerializer(serializers.Serializer):
    """One attribute a held run would overwrite: the user's local value gives way to `idp_value`."""

    user = serializers.IntegerField(source="user_id")
    user_name = serializers.CharField(source="user.user_name")
    attribute = serializers.CharField()
    idp_value = serializers.JSONField()
    local_edit_by = serializers.CharField(source="local_edit_by_label")
    local_edit_at = serializers.DateTimeField(allow_null=True)


class SyncRunCreateSerializer(Input):
    """Sync now: a whole connection, or some of its users."""

    connection = serializers.PrimaryKeyRelatedField(queryset=Connection.objects.all(), required=False)
    users = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
                                  allow_empty=False,
                                  max_length=10_000, help_text="User ids, all of one connection.")

    def validate(self, data):
        connection, user_ids = data.get("connection"), sorted(set(data.get("users") or []))
        if connection is None and not user_ids:
            raise serializers.ValidationError("Name a connection, users, or both.")
        if user_ids:
            found = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "connection_id"))
            missing = [i for i in user_ids if i not in found]
            if missing:
                raise serializers.ValidationError({"users": [f"No users with ids {missing[:20]}."]})
            connections = set(found.values())
            if None in connections:
                raise serializers.ValidationError({"users": ["Local accounts have no IdP to sync from."]})
            if len(connections) > 1 or (connection is not None and connection.pk not in connections):
                raise serializers.ValidationError({"users": ["All users must belong to the one connection."]})
            connection = connection or Connection.objects.get(pk=connections.pop())
        return {"connection": connection, "user_ids": user_ids or None}
