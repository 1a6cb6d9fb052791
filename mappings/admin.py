"""Admin for connections, their tokens and their attribute mappings."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from mappings.catalogue import all_attributes
from mappings.models import AttributeMapping, Connection, CustomAttribute, MappingChange, ScimToken
from mappings.presets import preset_mapped_attributes
from mappings.services import (
    connection_apply_preset_mappings, custom_attribute_create, token_create, token_revoke,
)
from scimsync.admin_view_only import ViewOnly
from scimsync.display import show_time
from scimsync.models import ScimRequestLog
from scimsync.sync import runs, services
from scimsync.sync.next_sync import next_sync
from scimsync.sync.ownership import owner_of
from scimsync.sync.selectors import connections_with_counts

OUTCOME_LABELS = {
    "applied": "applied",
    "kept_local": "recorded only; the product's value kept",
    "not_in_catalogue": "received, not in the catalogue (kept as sent)",
    "overwrote_local_edit": "IdP value written over a local edit (see Lost edits)",
}


def _outcome_label(decoded: dict) -> str:
    label = OUTCOME_LABELS.get(decoded["outcome"], decoded["outcome"])
    if decoded.get("local_edit_by"):
        label = label.replace("a local edit", f"{decoded['local_edit_by']}'s local edit")
    return label


def _short(value) -> str:
    text = str(value) if value is not None else "(empty)"
    return text if len(text) <= 80 else text[:77] + "..."


def _posted_changes(post, mappings):
    """(mapping, new state, new apply) for every row whose posted values differ."""
    valid_states = {c for c, _ in AttributeMapping.State.choices}
    valid_applies = {c for c, _ in AttributeMapping.Apply.choices}
    changes = []
    for mapping in mappings:
        state = post.get(f"state-{mapping.attribute}", mapping.state)
        apply = post.get(f"apply-{mapping.attribute}", mapping.apply)
        if state not in valid_states or apply not in valid_applies:
            continue
        if (state, apply) != (mapping.state, mapping.apply):
            changes.append((mapping, state, apply))
    return changes


def _impact_sentence(attribute, state, apply, impact) -> str:
    if impact.sync_run is not None:
        url = reverse("admin:scimsync_syncrun_change", args=[impact.sync_run.pk])
        return format_html(
            '{} saved; the at-risk flags of {} users move in <a href="{}">sync run {}</a>, which shows its progress',
            attribute, impact.sync_run.users_total, url, impact.sync_run.pk)
    if state == AttributeMapping.State.UNMAPPED:
        return f"unmapping {attribute} stops overwriting {impact.no_longer_at_risk} users' local values"
    how = "" if apply == AttributeMapping.Apply.ALWAYS else " (on create only)"
    sentence = f"mapping {attribute}{how} puts {impact.now_at_risk} users' local values at risk"
    if impact.no_longer_at_risk:
        sentence += f" and clears {impact.no_longer_at_risk} flags"
    return sentence


class AttributeMappingInline(admin.TabularInline):
    """Read-only here: changes go through the mapping editor, which previews their impact first."""

    model = AttributeMapping
    fields = ("attribute", "owner", "observed_at", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    classes = ["attribute-mappings"]  # change_form.html hides each row's repeated caption

    @admin.display(description="Owner")
    def owner(self, obj):
        """The user page's labels: apply matters only while the attribute is mapped."""
        return owner_of(obj.state, obj.apply).label

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "preset", "sync_cadence", "sync_schedule", "last_push_at", "next_sync_column",
                    "user_total", "at_risk_total")
    fields = ("name", "preset", "sync_cadence", "sync_schedule", "last_push_at", "next_sync_column",
              "activity", "edit_mappings", "recent_requests")
    readonly_fields = ("last_push_at", "next_sync_column", "activity", "edit_mappings", "recent_requests")
    inlines = [AttributeMappingInline]
    actions = ["create_token", "sync_connection_now"]

    def get_queryset(self, request):
        return connections_with_counts(super().get_queryset(request))

    @admin.display(description="Users", ordering="users_count")
    def user_total(self, obj):
        return obj.users_count

    @admin.display(description="Users at risk", ordering="at_risk_users_count")
    def at_risk_total(self, obj):
        return obj.at_risk_users_count

    @admin.display(description="Next sync")
    def next_sync_column(self, obj):
        upcoming = next_sync(obj) if obj.pk else None
        return str(upcoming) if upcoming else "no push yet"

    def save_model(self, request, obj, form, change):
        new_preset = obj.preset
        if change and "preset" in form.changed_data:
            obj.preset = form.initial["preset"]  # switched below, through the service, with its audit
        super().save_model(request, obj, form, change)
        if not change:
            connection_apply_preset_mappings(connection=obj, mapped=preset_mapped_attributes(obj.preset))
        elif new_preset != obj.preset:
            changes = services.connection_apply_preset(
                connection=obj, preset=new_preset, actor=services.Actor.person(request.user))
            now = sum(impact.now_at_risk for *_, impact in changes)
            cleared = sum(impact.no_longer_at_risk for *_, impact in changes)
            deferred = sum(1 for *_, impact in changes if impact.sync_run is not None)
            self.message_user(request, f"Switched {obj} to the {obj.get_preset_display()} preset: "
                              f"{len(changes)} mappings changed, {now} local values now at risk, "
                              f"{cleared} no longer at risk"
                              + (f"; the flags of {deferred} of these mappings move in sync runs (see Sync runs)."
                                 if deferred else "."))

    @admin.display(description="Attribute mappings")
    def edit_mappings(self, obj):
        if obj.pk is None:
            return "Save the connection first; it starts from its preset's mappings."
        url = reverse("admin:mappings_connection_mappings", args=[obj.pk])
        return format_html('<a class="button" href="{}">Edit mappings (shows the impact before saving)</a>', url)

    @admin.display(description="Last 24 hours")
    def activity(self, obj):
        if obj.pk is None:
            return "—"
        since = timezone.now() - timedelta(days=1)
        logs = ScimRequestLog.objects.filter(connection=obj, created_at__gte=since)
        return f"{logs.pushes().count()} pushes applied, {logs.failed_pushes().count()} refused or failed"

    @admin.display(description="What the IdP sent recently")
    def recent_requests(self, obj):
        if obj.pk is None:
            return "—"
        logs = ScimRequestLog.objects.filter(connection=obj)[:20]
        def rows(log):
            decoded = format_html_join(
                "", "<li>{}: {} — {}</li>",
                ((d["attribute"], _short(d.get("value")), _outcome_label(d)) for d in log.decoded),
            )
            return (show_time(log.created_at), log.method, log.path, log.status,
                    log.detail, decoded)
        return format_html(
            '<table class="request-log"><tr><th>When</th><th>Request</th><th>Status</th><th>Attributes</th></tr>{}</table>',
            format_html_join("", "<tr><td>{}</td><td>{} {}</td><td>{} {}</td><td><ul>{}</ul></td></tr>",
                             (rows(log) for log in logs)),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        connection = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}),
                         "tokens_panel": self.tokens_panel(request, connection) if connection else ""}
        return super().change_view(request, object_id, form_url, extra_context)

    def tokens_panel(self, request, obj):
        """The connection's tokens, with revoke and create buttons for whoever manages tokens.

        Rendered inside the change form (templates/admin/mappings/connection/change_form.html);
        the buttons post to their own views (formaction), so they need no nested
        form and carry the change form's CSRF token.
        """
        can_manage = request.user.has_perm("mappings.manage_tokens")
        def row(token):
            if token.revoked_at:
                status = f"revoked {show_time(token.revoked_at)}"
            elif not token.is_usable:
                status = f"expired {show_time(token.expires_at)}"
            else:
                status = "usable"
            revoke = ""
            if can_manage and token.is_usable:
                revoke = format_html(
                    '<button type="submit" class="button revoke-token" formaction="{}" formnovalidate>'
                    "Revoke</button>",
                    reverse("admin:mappings_connection_token_revoke", args=[obj.pk, token.pk]),
                )
            return (token.hint + "…", token.label or "—", show_time(token.created_at),
                    show_time(token.last_used_at) if token.last_used_at else "never",
                    show_time(token.expires_at) if token.expires_at else "never", status, revoke)
        table = format_html(
            '<table class="tokens"><tr><th>Token</th><th>Label</th><th>Created</th><th>Last used</th>'
            "<th>Expires</th><th>Status</th><th></th></tr>{}</table>",
            format_html_join("", "<tr>" + "<td>{}</td>" * 7 + "</tr>",
                             (row(t) for t in obj.tokens.order_by("-created_at"))) or
            mark_safe('<tr><td colspan="7">No token yet: the IdP cannot push.</td></tr>'),
        )
        if not can_manage:
            return table
        create = format_html(
            '<div class="new-token">'
            '<label for="id_token_label">New token, label</label>'
            '<input id="id_token_label" name="token_label" maxlength="100" placeholder="e.g. Entra production">'
            '<label for="id_token_expires_days">expires after</label>'
            '<input id="id_token_expires_days" name="token_expires_days" type="number" min="1" max="3650">'
            '<span>days (empty: never)</span>'
            '<button type="submit" class="button" formaction="{}" formnovalidate>Create token</button></div>',
            reverse("admin:mappings_connection_token_create", args=[obj.pk]),
        )
        return format_html("{}{}", table, create)

    def _token_view(self, request, connection_id):
        connection = get_object_or_404(Connection, pk=connection_id)
        if not request.user.has_perm("mappings.manage_tokens"):
            raise PermissionDenied
        return connection

    def token_create_view(self, request, connection_id):
        """Create a token from the connection page; its plaintext is shown once, in a message."""
        connection = self._token_view(request, connection_id)
        back = redirect(reverse("admin:mappings_connection_change", args=[connection.pk]))
        days = request.POST.get("token_expires_days", "").strip()
        expires_at = None
        if days:
            if not days.isdigit() or not 1 <= int(days) <= 3650:
                self.message_user(request, "Expiry must be a whole number of days from 1 to 3650; "
                                  "no token was created.", messages.ERROR)
                return back
            expires_at = timezone.now() + timedelta(days=int(days))
        label = request.POST.get("token_label", "").strip()[:100] or f"admin {request.user}"
        _, plaintext = token_create(connection=connection, label=label, expires_at=expires_at)
        self.message_user(
            request,
            format_html("New token for {}: <code class=\"token\">{}</code> — copy it now, it is not shown again.",
                        connection, plaintext),
            messages.WARNING,
        )
        return back

    def token_revoke_view(self, request, connection_id, token_id):
        connection = self._token_view(request, connection_id)
        token = get_object_or_404(ScimToken, pk=token_id, connection=connection)
        token_revoke(token=token)
        self.message_user(request, f"Revoked token {token.hint}… of {connection}: it no longer authenticates.")
        return redirect(reverse("admin:mappings_connection_change", args=[connection.pk]))

    def get_urls(self):
        return [
            path("<int:connection_id>/tokens/new/",
                 self.admin_site.admin_view(require_POST(self.token_create_view)),
                 name="mappings_connection_token_create"),
            path("<int:connection_id>/tokens/<int:token_id>/revoke/",
                 self.admin_site.admin_view(require_POST(self.token_revoke_view)),
                 name="mappings_connection_token_revoke"),
            path("<int:connection_id>/mappings/", self.admin_site.admin_view(self.mappings_view),
                 name="mappings_connection_mappings"),
            *super().get_urls(),
        ]

    def mappings_view(self, request, connection_id):
        """Edit mappings in two steps: preview the impact on at-risk flags, then confirm."""
        connection = get_object_or_404(Connection, pk=connection_id)
        if not self.has_view_permission(request, connection):
            raise PermissionDenied
        can_change = request.user.has_perm("mappings.change_attributemapping")
        if request.method == "POST" and not can_change:
            raise PermissionDenied
        mappings = list(connection.mappings.order_by("id"))
        changes = _posted_changes(request.POST, mappings) if request.method == "POST" else []
        if request.method == "POST" and "confirm" in request.POST and changes:
            actor = services.Actor.person(request.user)
            for mapping, state, apply in changes:
                impact = services.mapping_update(connection=connection, attribute=mapping.attribute,
                                                 state=state, apply=apply, actor=actor)
                self.message_user(request, _impact_sentence(mapping.attribute, state, apply, impact))
            return redirect(reverse("admin:mappings_connection_mappings", args=[connection.pk]))
        previews = [
            (mapping, state, apply, _impact_sentence(mapping.attribute, state, apply,
             services.mapping_impact_preview(connection=connection, attribute=mapping.attribute,
                                             state=state, apply=apply)))
            for mapping, state, apply in changes
        ]
        pending = {m.attribute: (s, a) for m, s, a in changes}
        # The SCIM path the IdP sends each attribute under, so an admin can match it to the
        # IdP's own mapping screen (one query for the custom attributes, not one per row).
        paths = {a.short_name: a.scim_path for a in all_attributes()}
        context = {
            **self.admin_site.each_context(request), "title": f"Attribute mappings of {connection}",
            "opts": self.model._meta, "connection": connection, "can_change": can_change,
            "rows": [(m, *pending.get(m.attribute, (m.state, m.apply)), paths.get(m.attribute, ""))
                     for m in mappings],
            "previews": previews, "states": AttributeMapping.State.choices, "applies": AttributeMapping.Apply.choices,
        }
        return TemplateResponse(request, "admin/mappings/connection/mappings.html", context)

    @admin.action(description="Create a SCIM token (shown once)", permissions=["manage_tokens"])
    def create_token(self, request, queryset):
        for connection in queryset:
            _, plaintext = token_create(connection=connection, label=f"admin {request.user}")
            self.message_user(
                request,
                format_html("New token for {}: <code class=\"token\">{}</code> — copy it now, it is not shown again.",
                            connection, plaintext),
                messages.WARNING,
            )

    @admin.action(description="Sync now: every user of the connection", permissions=["sync"])
    def sync_connection_now(self, request, queryset):
        for connection in queryset:
            run = runs.sync_run_start(connection=connection, requested_by=request.user)
            self.message_user(request, f"Queued {run} for {connection}.")

    def has_manage_tokens_permission(self, request):
        return request.user.has_perm("mappings.manage_tokens")

    def has_sync_permission(self, request):
        return request.user.has_perm("users.sync_user")


@admin.register(ScimToken)
class ScimTokenAdmin(admin.ModelAdmin):
    list_display = ("hint", "connection", "label", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("connection",)
    list_select_related = ("connection",)
    readonly_fields = ("connection", "hint", "created_at", "last_used_at", "revoked_at")
    fields = ("connection", "label", "hint", "created_at", "last_used_at", "expires_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are created by the connection action, which shows the plaintext once

    def has_delete_permission(self, request, obj=None):
        return False  # revoked, never deleted: the list keeps who used which token when

    def get_readonly_fields(self, request, obj=None):
        # Expiry decides who may push: it belongs to whoever manages tokens.
        if request.user.has_perm("mappings.manage_tokens"):
            return self.readonly_fields
        return (*self.readonly_fields, "label", "expires_at")

    @admin.action(description="Revoke selected tokens", permissions=["manage_tokens"])
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} tokens.")

    def has_manage_tokens_permission(self, request):
        return request.user.has_perm("mappings.manage_tokens")


@admin.register(MappingChange)
class MappingChangeAdmin(ViewOnly, admin.ModelAdmin):
    # ViewOnly: the audit of mapping changes is kept whole.
    list_display = ("created_at", "connection", "attribute", "before", "after", "actor",
                    "users_now_at_risk", "users_no_longer_at_risk")
    list_filter = ("connection",)
    list_select_related = ("connection", "actor")


@admin.register(CustomAttribute)
class CustomAttributeAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "scim_path", "created_at")
    fields = ("name", "description")

    @admin.display(description="SCIM path")
    def scim_path(self, obj):
        from mappings.catalogue import custom_attribute

        return custom_attribute(obj.name).scim_path

    def get_readonly_fields(self, request, obj=None):
        return ("name",) if obj else ()  # renaming would orphan stored values and mappings

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        created = custom_attribute_create(name=obj.name, description=obj.description)
        obj.pk = created.pk
