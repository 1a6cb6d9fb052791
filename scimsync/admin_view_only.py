"""An admin mixin for what is shown and never edited in the admin."""

from __future__ import annotations


class ViewOnly:
    """Rows are listed and shown, never added, changed or deleted through the admin.

    For records of what happened (the journal, lost edits, mapping changes, the at-risk
    report) and for what belongs to an IdP (provisioned groups). Actions that call a
    service (revert, restore) keep their own permissions.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
