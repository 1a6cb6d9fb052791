"""Admin for connections, their tokens and their attribute mappings."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html

from mappings.models import AttributeMapping, Connection, CustomAttribute, MappingChange, ScimToken
from mappings.presets import preset_mapped_attributes
from mappings.services import connection_apply_preset_mappings, token_create, token_revoke
from scimsync.sync import runs, services
from scimsync.sync.next_sync import next_sync


class AttributeMappingInline(admin.TabularInline):
    model = AttributeMapping
    fields = ("attribute", "state", "apply")
    readonly_fields = ("attribute",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ScimTokenInline(admin.TabularInline):
    model = ScimToken
    fields = ("hint", "label", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "preset", "sync_cadence", "last_push_at", "next_sync_column", "user_total", "at_risk_total")
    readonly_fields = ("last_push_at", "next_sync_column")
    inlines = [ScimTokenInline, AttributeMappingInline]
    actions = ["create_token", "sync_connection_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            users_count=Count("users", distinct=True),
            at_risk_count=Count(
                "users", filter=Q(users__attribute_states__at_risk=True), distinct=True
            ),
        )

    @admin.display(description="Users", ordering="users_count")
    def user_total(self, obj):
        return obj.users_count

    @admin.display(description="Users at risk", ordering="at_risk_count")
    def at_risk_total(self, obj):
        return obj.at_risk_count

    @admin.display(description="Next sync")
    def next_sync_column(self, obj):
        upcoming = next_sync(obj) if obj.pk else None
        return str(upcoming) if upcoming else "no push yet"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            connection_apply_preset_mappings(connection=obj, mapped=preset_mapped_attributes(obj.preset))

    def save_formset(self, request, form, formset, change):
        """Mapping edits go through mapping_update, which moves at-risk flags at once."""
        if formset.model is not AttributeMapping:
            return super().save_formset(request, form, formset, change)
        actor = services.Actor.person(request.user)
        for mapping_form in formset.forms:
            if not mapping_form.has_changed():
                continue
            mapping = mapping_form.instance
            impact = services.mapping_update(
                connection=form.instance, attribute=mapping.attribute,
                state=mapping_form.cleaned_data["state"], apply=mapping_form.cleaned_data["apply"], actor=actor,
            )
            self.message_user(
                request,
                f"{mapping.attribute}: {impact.now_at_risk} users now at risk, "
                f"{impact.no_longer_at_risk} no longer at risk.",
            )

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

    @admin.action(description="Revoke selected tokens", permissions=["manage_tokens"])
    def revoke(self, request, queryset):
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} tokens.")

    def has_manage_tokens_permission(self, request):
        return request.user.has_perm("mappings.manage_tokens")


@admin.register(MappingChange)
class MappingChangeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "connection", "attribute", "before", "after", "actor",
                    "users_now_at_risk", "users_no_longer_at_risk")
    list_filter = ("connection",)
    list_select_related = ("connection", "actor")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(CustomAttribute)
class CustomAttributeAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "created_at")
