"""The at-risk report (JSON and CSV), the journal and request log of a connection, lost edits and their restore."""

from __future__ import annotations

import csv

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from mappings.catalogue import all_attributes
from mappings.models import Connection
from scimsync.api import serializers as s
from scimsync.api.errors import Conflict, ErrorSerializer
from scimsync.api.filters import AtRiskFilter, JournalFilter, LostEditFilter, RequestLogFilter
from scimsync.api.selectors import journal_entries, lost_edits
from scimsync.api.views.base import actor
from scimsync.csv_cells import safe_row
from scimsync.display import show_value
from scimsync.models import JournalChange, JournalEntry, ScimRequestLog
from scimsync.sync.values import InvalidValue
from scimsync.sync import services
from scimsync.sync.selectors import at_risk_report

AT_RISK_PERMS = {"GET": ("scimsync.view_atriskattribute",)}


class AtRiskMixin:
    """The admin's at-risk report: every attribute the next sync will overwrite."""

    required_perms = AT_RISK_PERMS
    filterset_class = AtRiskFilter
    serializer_class = s.AtRiskRowSerializer

    def get_queryset(self):
        # Connection, attribute, user: the report's order; the id makes it total.
        return at_risk_report().order_by("user__connection__name", "attribute", "user__user_name", "pk")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "catalogue": {a.short_name: a for a in all_attributes()}}


@extend_schema(tags=["reports"])
class AtRiskList(AtRiskMixin, generics.ListAPIView):
    pass


class _JsonErrors(BaseContentNegotiation):
    """The CSV view answers errors in JSON whatever the Accept header says."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None


class _Echo:
    def write(self, value):
        return value


CSV_COLUMNS = ["connection", "attribute", "scim_path", "user", "user_name", "current", "idp_value",
               "local_edit_by", "local_edit_at", "overwritten_at"]


@extend_schema(tags=["reports"], responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR,
               description="Every at-risk attribute (all pages), one per line, with a header line.")})
class AtRiskCsv(AtRiskMixin, generics.GenericAPIView):
    content_negotiation_class = _JsonErrors
    pagination_class = None

    def get(self, request):
        """The at-risk report as CSV, streamed: every row, whatever the size."""
        rows = self.filter_queryset(self.get_queryset())
        context = self.get_serializer_context()
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(CSV_COLUMNS)
            for state in rows.iterator(chunk_size=500):
                row = s.AtRiskRowSerializer(state, context=context).data
                yield writer.writerow(safe_row([
                    row["connection_name"], row["attribute"], row["scim_path"], row["user"], row["user_name"],
                    _cell(row["current"]), _cell(row["idp_value"]), row["local_edit_by_label"],
                    row["local_edit_at"] or "", row["overwritten_at"] or "",
                ]))

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="at-risk.csv"'
        return response


def _cell(value) -> str:
    """A value as one CSV cell: an address as `key: value` pairs, null as empty."""
    return show_value(value, empty="", separator="; ")


@extend_schema(tags=["journal"])
class ConnectionJournal(generics.ListAPIView):
    """Pushes, syncs and edits of a connection's users, newest first."""

    serializer_class = s.JournalEntrySerializer
    required_perms = {"GET": ("scimsync.view_journalentry",)}
    filterset_class = JournalFilter
    ordering_fields = ["id", "created_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL arguments
            return JournalEntry.objects.none()
        connection = get_object_or_404(Connection, pk=self.kwargs["pk"])
        return journal_entries().filter(connection=connection)


@extend_schema(tags=["journal"])
class ConnectionRequestLog(generics.ListAPIView):
    """What the IdP sent recently: each SCIM write (and each failed request), decoded per attribute
    with what the product did with it, newest first. Reads are not logged."""

    serializer_class = s.RequestLogSerializer
    # The admin shows the log on the connection's page: whoever may view the connection may read it.
    required_perms = {"GET": ("mappings.view_connection",)}
    filterset_class = RequestLogFilter
    ordering_fields = ["id", "created_at", "status"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL arguments
            return ScimRequestLog.objects.none()
        connection = get_object_or_404(Connection, pk=self.kwargs["pk"])
        return ScimRequestLog.objects.filter(connection=connection)


@extend_schema(tags=["journal"])
class LostEditList(generics.ListAPIView):
    """Values a sync overwrote, with who had set them and when; each can be restored."""

    serializer_class = s.LostEditSerializer
    required_perms = {"GET": ("scimsync.view_lostedit",)}
    filterset_class = LostEditFilter
    ordering_fields = ["id", "entry__created_at", "attribute"]
    ordering = ["-entry__created_at", "-id"]

    def get_queryset(self):
        return lost_edits()


@extend_schema(tags=["journal"])
class LostEditRestore(APIView):
    # The admin's rule: restoring is a local edit.
    required_perms = {"POST": ("users.change_user",)}

    @extend_schema(request=None, responses={200: s.LostEditSerializer, 409: ErrorSerializer})
    def post(self, request, pk: int):
        """Bring the lost value back as a new local edit (at risk again if the attribute is still mapped)."""
        change = get_object_or_404(lost_edits().select_related("entry__user"), pk=pk)
        if change.restored_at is not None:
            raise Conflict("This lost edit was restored already.")
        if change.entry.user is None:
            raise Conflict("The user was deprovisioned; there is nobody to restore it to.")
        try:
            services.lost_edit_restore(change=change, actor=actor(request))
        except InvalidValue as error:
            raise Conflict(f"Not restored: {error}") from None
        return Response(s.LostEditSerializer(JournalChange.objects.select_related("entry").get(pk=pk)).data)
