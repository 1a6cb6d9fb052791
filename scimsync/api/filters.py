"""Query-string filters of the list endpoints; each runs in SQL."""

from __future__ import annotations

import django_filters as df
from django import forms
from django.db.models import Exists, OuterRef, Q

from mappings.models import Connection
from scimsync.models import AttributeState, JournalEntry, SyncRun


MAX_ID = 2**63 - 1  # the id columns are 64-bit; a larger number names no row


class _IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        # Bounded: a larger number would overflow SQLite's driver (a 500) rather than match nothing.
        super().__init__(*args, min_value=1, max_value=MAX_ID, **kwargs)


class IdFilter(df.NumberFilter):
    """An id: a whole number (django-filter's NumberFilter would take 1.5)."""

    field_class = _IdField


class _TrueFalseField(forms.TypedChoiceField):
    def __init__(self, *args, **kwargs):
        kwargs.pop("empty_value", None)
        super().__init__(*args, choices=[("true", "true"), ("false", "false")],
                         coerce=lambda value: value == "true", empty_value=None, **kwargs)


class BoolFilter(df.BooleanFilter):
    """`true` or `false`; anything else is a 400 (django-filter's own ignores it silently)."""

    field_class = _TrueFalseField


class StrictFilterSet(df.FilterSet):
    """A parameter given empty (`?connection=`) is a 400, as any other value the filter cannot read;
    django-filter's default ignores it, and the whole list comes back as if it had not been sent."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            if name in self.data and self.data.get(name) == "":
                self.form.add_error(name, "Give a value, or leave the parameter out.")
                valid = False
        return valid


class UserFilter(StrictFilterSet):
    connection = IdFilter(field_name="connection_id", help_text="Users of this connection.")
    local = BoolFilter(field_name="connection", lookup_expr="isnull",
                             help_text="true: local accounts only; false: provisioned users only.")
    at_risk = BoolFilter(method="filter_at_risk", help_text="Users with (true) or without (false) "
                                                                  "an attribute at risk.")
    at_risk_attribute = df.CharFilter(method="filter_at_risk_attribute",
                                      help_text="Users whose attribute of this name is at risk (as in the admin).")
    is_active = BoolFilter()
    scim_id = df.UUIDFilter()
    search = df.CharFilter(method="filter_search", help_text="userName, displayName, work email or externalId "
                                                             "contains this.")

    def filter_at_risk(self, queryset, name, value):
        return queryset.filter(at_risk_count__gt=0) if value else queryset.filter(at_risk_count=0)

    def filter_at_risk_attribute(self, queryset, name, value):
        # EXISTS rather than a join: a join would multiply rows under the at-risk count.
        flagged = AttributeState.objects.filter(user=OuterRef("pk"), attribute=value, at_risk=True)
        return queryset.filter(Exists(flagged))

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(user_name__icontains=value) | Q(display_name__icontains=value)
                               | Q(email_work__icontains=value) | Q(external_id__icontains=value))


class ConnectionFilter(StrictFilterSet):
    preset = df.ChoiceFilter(choices=Connection.Preset.choices)


class AtRiskFilter(StrictFilterSet):
    connection = IdFilter(field_name="user__connection_id")
    user = IdFilter(field_name="user_id")
    attribute = df.CharFilter()


class JournalFilter(StrictFilterSet):
    kind = df.ChoiceFilter(choices=JournalEntry.Kind.choices)
    since = df.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = df.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


class LostEditFilter(StrictFilterSet):
    connection = IdFilter(field_name="entry__connection_id")
    user = IdFilter(field_name="entry__user_id")
    attribute = df.CharFilter()
    restored = BoolFilter(field_name="restored_at", lookup_expr="isnull", exclude=True,
                                help_text="true: restored ones only; false: not restored yet.")


class RequestLogFilter(StrictFilterSet):
    failed = BoolFilter(field_name="status", method="filter_failed",
                        help_text="true: failed requests only (status 400 and up); false: successful ones.")
    method = df.ChoiceFilter(choices=[(m, m) for m in ("POST", "PUT", "PATCH", "DELETE", "GET")])
    since = df.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = df.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    def filter_failed(self, queryset, name, value):
        return queryset.filter(status__gte=400) if value else queryset.filter(status__lt=400)


class SyncRunFilter(StrictFilterSet):
    connection = IdFilter(field_name="connection_id")
    state = df.ChoiceFilter(choices=SyncRun.State.choices)
    reason = df.ChoiceFilter(choices=SyncRun.Reason.choices)
