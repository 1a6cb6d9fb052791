"""Connections: list, detail, create, cadence, preset; their SCIM tokens."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mappings.models import Connection, ScimToken
from mappings.services import connection_create, connection_set_cadence, token_create, token_revoke
from scimsync.api import serializers as s
from scimsync.api.conventions import detail_response
from scimsync.api.filters import ConnectionFilter
from scimsync.sync.selectors import connections_with_counts
from scimsync.api.views.base import actor, impacts_data, valid
from scimsync.sync import services

TAG = ["connections"]


def connection_data(connection_id: int) -> dict:
    return s.ConnectionSerializer(connections_with_counts().get(pk=connection_id)).data


@extend_schema(tags=TAG)
class ConnectionList(generics.ListAPIView):
    """Connections with their user and at-risk counts and next sync; POST creates one."""

    serializer_class = s.ConnectionSerializer
    required_perms = {"GET": ("mappings.view_connection",), "POST": ("mappings.add_connection",)}
    filterset_class = ConnectionFilter
    ordering_fields = ["id", "name", "created_at", "last_push_at", "users_count", "at_risk_users_count"]
    ordering = ["name"]

    def get_queryset(self):
        return connections_with_counts()

    @extend_schema(request=s.ConnectionCreateSerializer, responses={201: s.ConnectionSerializer})
    def post(self, request):
        """Create a connection; its mappings start from the preset (as in the admin)."""
        connection = connection_create(**valid(s.ConnectionCreateSerializer, request))
        return Response(connection_data(connection.pk), status=status.HTTP_201_CREATED)


@extend_schema(tags=TAG)
class ConnectionDetail(generics.RetrieveAPIView):
    serializer_class = s.ConnectionSerializer
    required_perms = {"GET": ("mappings.view_connection",)}
    etag = True

    def get_queryset(self):
        return connections_with_counts()

    def retrieve(self, request, *args, **kwargs):
        return detail_response(request, self.get_serializer(self.get_object()).data)


@extend_schema(tags=TAG)
class ConnectionCadence(APIView):
    required_perms = {"PUT": ("mappings.change_connection",)}

    @extend_schema(request=s.CadenceSerializer, responses=s.ConnectionSerializer)
    def put(self, request, pk: int):
        """Set the IdP's declared cadence and the product's own sync schedule; both move the next sync."""
        connection = get_object_or_404(Connection, pk=pk)
        data = valid(s.CadenceSerializer, request)
        connection_set_cadence(connection=connection, sync_cadence=data["sync_cadence"],
                               sync_schedule=data.get("sync_schedule"))
        return Response(connection_data(pk))


@extend_schema(tags=TAG)
class ConnectionPreset(APIView):
    required_perms = {"PUT": ("mappings.change_connection", "mappings.change_attributemapping")}

    @extend_schema(request=s.PresetSerializer, responses=s.PresetImpactsSerializer)
    def put(self, request, pk: int):
        """Switch to a vendor preset: every mapping that differs from it changes, moving at-risk flags at once."""
        connection = get_object_or_404(Connection, pk=pk)
        preset = valid(s.PresetSerializer, request)["preset"]
        changes = services.connection_apply_preset(connection=connection, preset=preset, actor=actor(request))
        return Response(impacts_data(changes, True, preset=preset))


@extend_schema(tags=TAG)
class ConnectionPresetPreview(APIView):
    # Like the admin's mapping editor, previewing needs the right to change.
    required_perms = {"POST": ("mappings.change_connection", "mappings.change_attributemapping")}

    @extend_schema(request=s.PresetSerializer, responses={200: s.PresetImpactsSerializer})
    def post(self, request, pk: int):
        """What switching to the preset would do to at-risk flags. Changes nothing."""
        connection = get_object_or_404(Connection, pk=pk)
        preset = valid(s.PresetSerializer, request)["preset"]
        changes = [
            (a, st, ap, services.mapping_impact_preview(connection=connection, attribute=a, state=st, apply=ap))
            for a, st, ap in services.preset_mapping_changes(connection=connection, preset=preset)
        ]
        return Response(impacts_data(changes, False, preset=preset))


@extend_schema(tags=TAG)
class ConnectionTokens(generics.ListAPIView):
    """The connection's SCIM bearer tokens, without secrets; POST creates one and shows it once."""

    serializer_class = s.ScimTokenSerializer
    required_perms = {"GET": ("mappings.view_scimtoken",), "POST": ("mappings.manage_tokens",)}
    ordering_fields = ["id", "created_at", "last_used_at"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL arguments
            return ScimToken.objects.none()
        connection = get_object_or_404(Connection, pk=self.kwargs["pk"])
        return ScimToken.objects.filter(connection=connection)

    @extend_schema(request=s.ScimTokenCreateSerializer, responses={201: s.ScimTokenCreatedSerializer})
    def post(self, request, pk: int):
        connection = get_object_or_404(Connection, pk=pk)
        token, plaintext = token_create(connection=connection, **valid(s.ScimTokenCreateSerializer, request))
        token.token = plaintext
        return Response(s.ScimTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=TAG)
class ConnectionTokenRevoke(APIView):
    required_perms = {"POST": ("mappings.manage_tokens",)}

    @extend_schema(request=None, responses=s.ScimTokenSerializer)
    def post(self, request, pk: int, token_id: int):
        """Revoke a token at once; revoking twice is harmless."""
        token = get_object_or_404(ScimToken, pk=token_id, connection_id=pk)
        token_revoke(token=token)
        return Response(s.ScimTokenSerializer(token).data)
