"""Admin for the at-risk report, the journal, lost edits and sync runs."""

from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from mappings.catalogue import get_attribute
from scimsync.admin_view_only import ViewOnly
from scimsync.csv_cells import safe_row
from scimsync.display import show_time, show_value
from scimsync.models import AtRiskAttribute, JournalChange, JournalEntry, LostEdit, SyncRun
from scimsync.sync import runs, services
from scimsync.sync.next_sync import next_sync
from scimsync.sync.selectors import at_risk_groups
from scimsync.sync.values import InvalidValue, read_value


_show = show_value


@admin.register(AtRiskAttribute)
class AtRiskReportAdmin(ViewOnly, admin.ModelAdmin):
    """The at-risk report: every local edit the next sync will overwrite, across all users."""

    list_display = ("connection_name", "attribute", "user_link", "current_value", "idp_value_shown",
                    "local_edit", "next_sync_at")
    list_filter = ("user__connection", "attribute")
    list_select_related = ("user__connection", "user__manager")
    ordering = ("user__connection__name", "attribute", "user__user_name")
    search_fields = ("user__user_name", "attribute")
    actions = ["revert_selected", "export_csv"]
    list_per_page = 100

    def get_queryset(self, request):
        return super().get_queryset(request).filter(at_risk=True)

    change_list_template = "admin/scimsync/atriskattribute/change_list.html"

    def changelist_view(self, request, extra_context=None):
        # "Select at-risk attribute to view" says nothing; say what the rows are.
        title = "At-risk report: local edits the next sync will overwrite"
        response = super().changelist_view(request, {"title": title, **(extra_context or {})})
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:  # headings for what the filters selected, every page of it
            response.context_data["groups"] = at_risk_groups(changelist.queryset)
        return response

    @admin.display(description="Connection", ordering="user__connection__name")
    def connection_name(self, obj):
        return obj.user.connection

    @admin.display(description="User", ordering="user__user_name")
    def user_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:users_user_change", args=[obj.user_id]), obj.user)

    @admin.display(description="Current value (local edit)")
    def current_value(self, obj):
        return _show(read_value(obj.user, get_attribute(obj.attribute)))

    @admin.display(description="IdP value (will replace it)")
    def idp_value_shown(self, obj):
        return _show(obj.idp_value)

    @admin.display(description="Edited by")
    def local_edit(self, obj):
        if not obj.local_edit_at:
            return "—"
        return f"{obj.local_edit_by_label} at {show_time(obj.local_edit_at)}"

    @admin.display(description="Next sync")
    def next_sync_at(self, obj):
        upcoming = next_sync(obj.user.connection)
        return str(upcoming) if upcoming else "when the IdP next pushes"

    @admin.action(description="Revert selected to the IdP value", permissions=["revert"])
    def revert_selected(self, request, queryset):
        actor = services.Actor.person(request.user)
        done = 0
        for state in queryset:
            try:
                done += services.user_revert_attribute(user=state.user, attribute=state.attribute, actor=actor)
            except InvalidValue as e:
                self.message_user(request, f"{state.user}: not reverted: {e}", messages.ERROR)
        self.message_user(request, f"Reverted {done} attributes to their IdP values.")

    def has_revert_permission(self, request):
        return request.user.has_perm("users.revert_user_attribute")

    @admin.action(description="Export selected as CSV")
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="at-risk.csv"'
        writer = csv.writer(response)
        writer.writerow(["connection", "attribute", "user", "current value", "IdP value", "edited by",
                         "edited at", "next sync"])
        for s in queryset:
            upcoming = next_sync(s.user.connection)
            writer.writerow(safe_row([
                s.user.connection, s.attribute, s.user.user_name, _show(read_value(s.user, get_attribute(s.attribute))),
                _show(s.idp_value), s.local_edit_by_label, s.local_edit_at.isoformat() if s.local_edit_at else "",
                upcoming.at.isoformat() if upcoming else "",
            ]))
        return response


class JournalChangeInline(admin.TabularInline):
    model = JournalChange
    fields = ("attribute", "outcome", "old_value", "new_value", "lost_edit", "lost_edit_by_label", "lost_edit_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ViewOnly, admin.ModelAdmin):
    # ViewOnly: the journal is the audit trail, nobody edits or deletes it.
    list_display = ("created_at", "user_name", "connection", "kind", "source", "summary")
    list_filter = ("kind", "connection")
    list_select_related = ("connection",)
    search_fields = ("user_name", "source")
    show_full_result_count = False  # the journal grows without bound; skip the second COUNT(*)
    inlines = [JournalChangeInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("changes")

    @admin.display(description="Changes")
    def summary(self, obj):
        from users.admin import c_summary

        return format_html_join("", "<div>{}</div>", ((c_summary(c),) for c in obj.changes.all()))


@admin.register(LostEdit)
class LostEditAdmin(ViewOnly, admin.ModelAdmin):
    """Lost edits: values a sync overwrote, each restorable as a new local edit."""

    list_display = ("lost_at", "user_name", "connection", "attribute", "lost_value", "written_value",
                    "edited", "restored")
    list_filter = ("entry__connection", "attribute")
    list_select_related = ("entry__connection",)
    search_fields = ("entry__user_name", "attribute")
    show_full_result_count = False
    actions = ["restore"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(lost_edit=True).order_by("-entry__created_at", "-id")

    @admin.display(description="Lost at", ordering="entry__created_at")
    def lost_at(self, obj):
        return show_time(obj.entry.created_at)

    @admin.display(description="Value lost (the local edit)")
    def lost_value(self, obj):
        return show_value(obj.old_value)

    @admin.display(description="Value the sync wrote")
    def written_value(self, obj):
        return show_value(obj.new_value)

    @admin.display(description="Edited by", ordering="lost_edit_at")
    def edited(self, obj):
        return f"{obj.lost_edit_by_label or 'someone'} at {show_time(obj.lost_edit_at)}"

    @admin.display(description="Restored", ordering="restored_at")
    def restored(self, obj):
        return show_time(obj.restored_at) if obj.restored_at else "no"

    @admin.display(description="User")
    def user_name(self, obj):
        return obj.entry.user_name

    @admin.display(description="Connection")
    def connection(self, obj):
        return obj.entry.connection

    @admin.action(description="Restore the lost value (as a new local edit)", permissions=["restore"])
    def restore(self, request, queryset):
        actor = services.Actor.person(request.user)
        restored = 0
        for change in queryset.select_related("entry__user"):
            if change.entry.user is None or change.restored_at:
                continue
            try:
                services.lost_edit_restore(change=change, actor=actor)
            except InvalidValue as e:
                self.message_user(request, f"{change.entry.user_name}: not restored: {e}", messages.ERROR)
                continue
            restored += 1
        self.message_user(request, f"Restored {restored} values; still-mapped ones are flagged at risk again.")

    def has_restore_permission(self, request):
        return request.user.has_perm("users.change_user")


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ("id", "connection", "job", "reason", "state", "progress", "users_at_risk",
                    "attributes_overwritten", "lost_edits", "flags_moved", "created_at", "finished_at")
    list_filter = ("state", "reason", "connection")
    list_select_related = ("connection",)
    readonly_fields = ["progress", "dry_run", *[f.name for f in SyncRun._meta.fields]]
    actions = ["retry", "approve"]
    change_form_template = "admin/scimsync/syncrun/change_form.html"

    @admin.display(description="Job")
    def job(self, obj):
        return f"recompute the flags of {obj.attribute}" if obj.recomputes_flags else "sync (IdP values win)"

    @admin.display(description="Flags raised / cleared")
    def flags_moved(self, obj):
        return f"{obj.flags_raised} / {obj.flags_cleared}" if obj.recomputes_flags else "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a run is the record of what a sync did and who asked

    @admin.display(description="Progress")
    def progress(self, obj):
        url = reverse("admin:scimsync_syncrun_progress", args=[obj.pk])
        return format_html(
            '<span class="sync-progress" data-url="{}" data-state="{}"><progress max="{}" value="{}"></progress> '
            '<span class="sync-progress-text">{} / {} users, {}</span></span>',
            url, obj.state, max(obj.users_total, 1), obj.users_done, obj.users_done, obj.users_total,
            obj.get_state_display(),
        )

    @admin.display(description="Dry run: what it would overwrite")
    def dry_run(self, obj):
        if obj.state != SyncRun.State.HELD:
            return "—"
        rows = runs.sync_run_preview(run=obj)
        return format_html(
            "<p>This run would overwrite local values of {} users. Approve it to run.</p>"
            "<table><tr><th>User</th><th>Attribute</th><th>IdP value</th></tr>{}</table>",
            obj.users_at_risk,
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                             ((s.user.user_name, s.attribute, _show(s.idp_value)) for s in rows)),
        )

    @admin.action(description="Retry selected failed runs", permissions=["sync"])
    def retry(self, request, queryset):
        for run in queryset.filter(state=SyncRun.State.FAILED):
            new = runs.sync_run_retry(run=run, requested_by=request.user)
            self.message_user(request, f"Queued {new} to retry run {run.pk}.")

    @admin.action(description="Approve selected held runs", permissions=["approve"])
    def approve(self, request, queryset):
        approved = sum(runs.sync_run_approve(run=r, approved_by=request.user) for r in queryset)
        self.message_user(request, f"Approved {approved} runs.", messages.SUCCESS if approved else messages.WARNING)

    def has_sync_permission(self, request):
        return request.user.has_perm("users.sync_user")

    def has_approve_permission(self, request):
        return request.user.has_perm("scimsync.approve_syncrun")

    def get_urls(self):
        return [
            path("<int:run_id>/progress/", self.admin_site.admin_view(self.progress_json),
                 name="scimsync_syncrun_progress"),
            *super().get_urls(),
        ]

    def progress_json(self, request, run_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(SyncRun, pk=run_id)
        return JsonResponse({
            "state": run.state, "state_label": run.get_state_display(), "users_done": run.users_done,
            "users_total": run.users_total, "attributes_overwritten": run.attributes_overwritten,
            "lost_edits": run.lost_edits, "error": run.error, "recomputes_flags": run.recomputes_flags,
            "flags_raised": run.flags_raised, "flags_cleared": run.flags_cleared,
        })

from scimsync.api import admin as api_admin  # noqa: E402,F401  (registers ApiKey)
