"""Admin for API keys: the plaintext is shown once, on creation; revoking is an action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from scimsync.api.models import ApiKey
from scimsync.api.services import api_key_create, api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("hint", "owner", "label", "scope", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("scope",)
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    fields = ("owner", "label", "scope", "expires_at", "hint", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # Once made, a key's owner and scope are fixed: make a new key rather than widen an old one.
        fixed = ("hint", "created_at", "last_used_at", "revoked_at")
        return (*fixed, "owner", "scope") if obj is not None else fixed

    def has_add_permission(self, request):
        # A key acts with its owner's rights, so only a superuser may give one to any account.
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, plaintext = api_key_create(owner=obj.owner, scope=obj.scope, label=obj.label,
                                        expires_at=obj.expires_at)
        obj.pk, obj.digest, obj.hint, obj.created_at = key.pk, key.digest, key.hint, key.created_at
        self.message_user(
            request,
            format_html('New API key: <code class="api-key">{}</code> — copy it now, it is not shown again.',
                        plaintext),
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {len(queryset)} API keys.")
