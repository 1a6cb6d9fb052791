"""Admin for the journal and sync runs."""

from __future__ import annotations

from django.contrib import admin

from scimsync.models import JournalChange, JournalEntry, SyncRun
from scimsync.sync import runs


class JournalChangeInline(admin.TabularInline):
    model = JournalChange
    fields = ("attribute", "outcome", "old_value", "new_value", "lost_edit", "lost_edit_by_label", "lost_edit_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user_name", "connection", "kind", "source", "summary")
    list_filter = ("kind", "connection")
    list_select_related = ("connection",)
    search_fields = ("user_name", "source")
    show_full_result_count = False
    inlines = [JournalChangeInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("changes")

    @admin.display(description="Changes")
    def summary(self, obj):
        from users.admin import c_summary

        return "; ".join(c_summary(c) for c in obj.changes.all())

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ("id", "connection", "reason", "state", "users_done", "users_total",
                    "attributes_overwritten", "lost_edits", "created_at", "finished_at")
    list_filter = ("state", "reason", "connection")
    list_select_related = ("connection",)
    readonly_fields = [f.name for f in SyncRun._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry selected failed runs")
    def retry(self, request, queryset):
        for run in queryset.filter(state=SyncRun.State.FAILED):
            new = runs.sync_run_retry(run=run, requested_by=request.user)
            self.message_user(request, f"Queued {new} to retry run {run.pk}.")
