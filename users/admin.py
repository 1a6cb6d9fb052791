"""Admin for users: ownership of every attribute, at-risk flags, journal, Sync now."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from mappings.catalogue import BUILTIN_ATTRIBUTES, Kind, all_attributes, get_attribute
from scimsync.admin_view_only import ViewOnly
from scimsync.display import show_time, show_value
from scimsync.sync import runs, services
from scimsync.sync.decode import out_of_catalogue
from scimsync.sync.selectors import user_attribute_rows, user_next_sync, with_risk_counts
from scimsync.sync.values import InvalidValue, read_value
from users.forms import AddressField
from users.models import Group, GroupMembership, User

_FIELD_TO_ATTRIBUTE = {a.field: a for a in BUILTIN_ATTRIBUTES if a.field}


_CUSTOM_PREFIX = "custom__"  # a custom attribute's form field: custom__NAME (no ":" in field names)


def _custom_field(attribute) -> str:
    return _CUSTOM_PREFIX + attribute.scim_name


def _attribute_of_field(name: str):
    """The catalogue attribute a form field of the user page edits, or None."""
    if name.startswith(_CUSTOM_PREFIX):
        try:
            return get_attribute("custom:" + name.removeprefix(_CUSTOM_PREFIX))
        except KeyError:
            return None
    return _FIELD_TO_ATTRIBUTE.get(name)


class AtRiskFilter(admin.SimpleListFilter):
    title = "at risk"
    parameter_name = "at_risk"

    def lookups(self, request, model_admin):
        return [("yes", "Has at-risk attributes"), ("no", "No at-risk attributes")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(at_risk_count__gt=0)
        if self.value() == "no":
            return queryset.filter(at_risk_count=0)
        return queryset


class AtRiskAttributeFilter(admin.SimpleListFilter):
    title = "at-risk attribute"
    parameter_name = "at_risk_attribute"

    def lookups(self, request, model_admin):
        return [(a.short_name, a.short_name) for a in all_attributes()]  # custom attributes too

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(
                attribute_states__attribute=self.value(), attribute_states__at_risk=True
            ).distinct()
        return queryset


_show = show_value


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("user_name", "display_name", "connection", "is_active", "at_risk_column")
    list_filter = (AtRiskFilter, AtRiskAttributeFilter, "connection", "is_active", "is_staff")
    list_select_related = ("connection",)
    search_fields = ("user_name", "display_name", "email_work", "external_id")
    ordering = ("user_name",)
    raw_id_fields = ("manager",)
    readonly_fields = ("scim_id", "connection", "ownership", "received_outside_catalogue", "recent_journal",
                       "date_joined", "last_login")
    actions = ["sync_now"]
    add_fieldsets = ((None, {"fields": ("user_name", "password1", "password2", "is_staff")}),)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        sets = [
            ("Ownership and next sync", {"fields": ("ownership",)}),
            ("Identity", {"fields": ("scim_id", "connection", "user_name", "external_id", "is_active")}),
            ("Name", {"fields": ("display_name", "given_name", "family_name", "middle_name",
                                 "formatted_name", "honorific_prefix", "honorific_suffix", "nick_name")}),
            ("Profile", {"fields": ("title", "user_type", "profile_url", "preferred_language", "locale",
                                    "timezone")}),
            ("Contact", {"fields": ("email_work", "email_home", "email_other", "phone_work",
                                    "phone_mobile", "phone_home", "phone_fax", "phone_other",
                                    "address_work", "address_home")}),
            ("Enterprise", {"fields": ("employee_number", "cost_center", "organization", "division",
                                       "department", "manager")}),
        ]
        customs = [_custom_field(a) for a in all_attributes() if a.is_custom]
        if customs:
            sets.append(("Custom attributes", {"fields": customs}))
        if out_of_catalogue(obj.scim_extras or {}):
            sets.append(("Received, not in the catalogue", {"fields": ("received_outside_catalogue",)}))
        sets.append(("Journal", {"fields": ("recent_journal",)}))
        if obj.connection_id is None:
            sets.append(("Local account", {"fields": ("password", "is_staff", "is_superuser", "groups",
                                                      "user_permissions", "last_login", "date_joined")}))
        return sets

    # Who may act as whom: only a superuser grants rights. A staff member who may edit
    # users could otherwise make themselves (or anyone) superuser through this page.
    _GRANTING_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not request.user.is_superuser:
            readonly = (*readonly, *self._GRANTING_FIELDS)
        if obj is not None and obj.connection_id is not None:
            # The IdP finds the user by these (scimsync.sync.services.local_edit_refused).
            readonly = (*readonly, *services.IDP_IDENTIFIERS)
        return readonly

    def has_delete_permission(self, request, obj=None):
        # A provisioned user is removed by its IdP (SCIM DELETE, scimsync.sync.services.
        # user_deprovision: journaled, its groups' versions moved). Deleted here, the IdP's
        # next push would find nothing, and no journal entry would say what happened.
        if obj is not None and obj.connection_id is not None:
            return False
        return super().has_delete_permission(request, obj)

    def user_change_password(self, request, id, form_url=""):
        """A local account's password: changed by a superuser, or by its owner."""
        if not request.user.is_superuser and str(request.user.pk) != str(id):
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def get_queryset(self, request):
        return with_risk_counts(super().get_queryset(request))

    @admin.display(description="At risk", ordering="at_risk_count")
    def at_risk_column(self, obj):
        if not obj.at_risk_count:
            return "—"
        return format_html('<span class="at-risk">⚠ {} at risk</span>', obj.at_risk_count)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            # Custom attributes live in one JSON column: a form field each, declared here.
            customs = [a for a in all_attributes() if a.is_custom]
            declared = {
                _custom_field(a): forms.CharField(label=a.scim_name, required=False, max_length=2048,
                                                  initial=read_value(obj, a) or "")
                for a in customs
            }
            declared.update({name: AddressField(label=User._meta.get_field(name).verbose_name.capitalize())
                             for name in ("address_work", "address_home")})
            kwargs["form"] = type("UserChangeFormWithCustoms", (kwargs.get("form", self.form),), declared)
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and obj.connection_id:
            rows = {r.attribute.short_name: r for r in user_attribute_rows(obj)}
            upcoming = user_next_sync(obj)
            for name, field in form.base_fields.items():
                attribute = _attribute_of_field(name)
                if attribute is None or attribute.short_name not in rows:
                    continue
                row = rows[attribute.short_name]
                note = f"{row.owner.label} ({attribute.scim_path})."
                if row.owner == "idp":
                    warning = (f"{attribute.short_name} is mapped to {obj.connection}: this change will be "
                               f"overwritten at the next sync, {upcoming or 'when the IdP next pushes'}.")
                    note += " " + warning
                    field.widget.attrs["data-idp-owned"] = warning
                if row.at_risk:
                    note += f" AT RISK: the IdP value {_show(row.idp_value)!r} will replace it."
                field.help_text = note
        return form

    @admin.display(description="Attributes")
    def ownership(self, obj):
        if obj.pk is None:
            return "—"
        rows = user_attribute_rows(obj)
        upcoming = user_next_sync(obj)

        def cells(row):
            flag = "⚠ At risk" if row.at_risk else ""
            edit = ""
            if row.local_edit_at:
                edit = f"edited by {row.local_edit_by} at {show_time(row.local_edit_at)}"
                if row.local_edit_before is not None:
                    edit += f" (was {show_value(row.local_edit_before)})"
            action = ""
            # The revert view checks the permission; a viewer's click is refused there.
            # The button belongs to a separate form (change_form.html renders it after
            # the user form): were it a submit button of the user form, it would be the
            # form's default button and Enter in any field would revert instead of save.
            if row.at_risk:
                action = format_html(
                    '<button type="submit" class="button" form="revert-form" '
                    'name="attribute" value="{}">Revert to IdP value</button>',
                    row.attribute.short_name,
                )
            if row.idp_sent:
                idp = _show(row.idp_value)
            else:
                idp = "never sent" if row.observed_from_idp else "never sent (not observed from this IdP)"
            owner = row.owner.label
            if mapping_url and not row.attribute.always_idp:
                owner = format_html('<a href="{}#mapping-{}" title="the mapping that owns it">{}</a>',
                                    mapping_url, row.attribute.short_name, row.owner.label)
            return (
                row.attribute.short_name, owner, _show(row.current), idp, flag,
                str(upcoming) if row.at_risk and upcoming else "", edit, action,
                "at-risk" if row.at_risk else "",
            )

        mapping_url = reverse("admin:mappings_connection_mappings", args=[obj.connection_id]) if obj.connection_id else ""
        body = format_html_join(
            "", '<tr class="{8}" data-attribute="{0}"><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td>'
            '<td><strong>{4}</strong></td><td>{5}</td><td>{6}</td><td>{7}</td></tr>',
            # A row where both values are empty tells nothing (the IdP sent it empty, or
            # never): listing every such attribute would bury the ones that matter.
            (cells(r) for r in rows if r.current is not None or r.idp_value is not None or r.at_risk),
        )
        summary = (
            f"Connection: {obj.connection}. Next sync: {upcoming or 'not known yet (no push received)'}."
            if obj.connection_id else "Local account: no IdP owns any attribute."
        )
        return format_html(
            '<p>{}</p><table class="ownership"><thead><tr><th>Attribute</th><th>Owner</th>'
            "<th>Current value</th><th>IdP value</th><th>Flag</th><th>Overwritten at</th>"
            "<th>Local edit</th><th></th></tr></thead><tbody>{}</tbody></table>",
            summary, body,
        )

    @admin.display(description="Kept as sent")
    def received_outside_catalogue(self, obj):
        """What the IdP sent that no attribute holds: returned on SCIM GET, never synced or flagged."""
        rows = format_html_join("", "<tr><td>{}</td><td><code>{}</code></td></tr>",
                                ((where, json.dumps(value, ensure_ascii=False))
                                 for where, value in out_of_catalogue(obj.scim_extras or {})))
        return format_html('<table class="outside-catalogue"><thead><tr><th>Sent as</th><th>Value</th></tr>'
                           "</thead><tbody>{}</tbody></table>", rows)

    @admin.display(description="Recent pushes, syncs and edits")
    def recent_journal(self, obj):
        entries = obj.journal.prefetch_related("changes")[:20]
        link = reverse("admin:scimsync_journalentry_changelist") + f"?user__id__exact={obj.pk}"
        items = format_html_join(
            "", "<li>{} — {} by {}<ul>{}</ul></li>",
            (
                (show_time(e.created_at), e.get_kind_display(), e.source,
                 format_html_join("", "<li>{}</li>", ((c_summary(c),) for c in e.changes.all())))
                for e in entries
            ),
        )
        return format_html('<ul class="journal">{}</ul><a href="{}">Full journal</a>', items, link)

    def save_model(self, request, obj, form, change):
        """Profile edits go through the sync engine, so they are flagged and journaled."""
        if not change:
            return super().save_model(request, obj, form, change)
        stored = User.objects.get(pk=obj.pk)
        profile = [n for n in form.changed_data if _attribute_of_field(n) is not None]
        for name in form.changed_data:
            if name not in profile and hasattr(stored, name) and name not in ("groups", "user_permissions"):
                setattr(stored, name, getattr(obj, name))
        stored.save()
        actor = services.Actor.person(request.user)
        for name in profile:
            attribute = _attribute_of_field(name)
            value = form.cleaned_data[name] if attribute.is_custom else getattr(obj, name)
            if attribute.kind is Kind.REFERENCE:
                value = str(value.scim_id) if value is not None else None
            try:
                services.user_local_edit(user=stored, attribute=attribute.short_name, value=value, actor=actor)
            except InvalidValue as e:
                messages.error(request, str(e))

    @admin.action(description="Sync now (IdP values win)", permissions=["sync"])
    def sync_now(self, request, queryset):
        by_connection: dict = {}
        for user in queryset.filter(connection__isnull=False).select_related("connection"):
            by_connection.setdefault(user.connection, []).append(user.pk)
        for connection, ids in by_connection.items():
            run = runs.sync_run_start(connection=connection, user_ids=ids, requested_by=request.user)
            url = reverse("admin:scimsync_syncrun_change", args=[run.pk])
            verb = "Held for approval:" if run.state == run.State.HELD else "Queued"
            self.message_user(request, format_html('{} <a href="{}">{}</a> for {} users of {}.', verb, url, run, len(ids), connection))
        if not by_connection:
            self.message_user(request, "Local accounts have no IdP to sync from.", messages.WARNING)

    def has_sync_permission(self, request):
        return request.user.has_perm("users.sync_user")

    def get_urls(self):
        return [
            path("<int:user_id>/revert/", self.admin_site.admin_view(self.revert_view), name="users_user_revert"),
            *super().get_urls(),
        ]

    def revert_view(self, request, user_id):
        if request.method != "POST":
            raise PermissionDenied
        if not request.user.has_perm("users.revert_user_attribute"):
            raise PermissionDenied
        user = get_object_or_404(User, pk=user_id, connection__isnull=False)
        attribute = request.POST.get("attribute", "")
        try:
            reverted = services.user_revert_attribute(user=user, attribute=attribute,
                                                      actor=services.Actor.person(request.user))
        except InvalidValue as e:
            self.message_user(request, f"Not reverted: {e}", messages.ERROR)
        else:
            if reverted:
                self.message_user(request, f"{attribute} is back to the IdP value.")
            else:
                self.message_user(request, f"The IdP never sent {attribute}; nothing to revert to.",
                                  messages.WARNING)
        return HttpResponseRedirect(reverse("admin:users_user_change", args=[user_id]))


def c_summary(change) -> str:
    text = f"{change.attribute}: {_show(change.old_value)} → {_show(change.new_value)}"
    if change.lost_edit:
        text += f" — LOST EDIT by {change.lost_edit_by_label or 'someone'}"
        if change.lost_edit_at:
            text += f" at {show_time(change.lost_edit_at)}"
    elif change.outcome == "kept_local":
        text += " — recorded only; the product's value was kept"
    return text


class MembershipInline(ViewOnly, admin.TabularInline):
    model = GroupMembership
    raw_id_fields = ("user",)
    extra = 0
    verbose_name, verbose_name_plural = "member", "members"

    def get_queryset(self, request):
        # Each row links its user: one join, not a query per member (groups hold thousands).
        return super().get_queryset(request).select_related("user")


@admin.register(Group)
class GroupAdmin(ViewOnly, admin.ModelAdmin):
    """Provisioned groups, shown read-only.

    A group and its members are its IdP's alone: no mapping makes any part of a group the
    product's, so a change made here would be undone at the IdP's next push without a flag,
    exactly what scimsync exists to prevent, and saving it here bypassed the version bumps
    (ETags) and member checks of users.services. Change groups in the IdP.
    """

    list_display = ("display_name", "connection", "member_count")
    list_filter = ("connection",)
    list_select_related = ("connection",)
    search_fields = ("display_name", "external_id")
    readonly_fields = ("scim_id",)
    inlines = [MembershipInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, obj):
        return obj.member_total
