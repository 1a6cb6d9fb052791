"""The attribute catalogue, and who owns each attribute per connection (with an impact preview)."""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from mappings.models import Connection
from mappings.services import custom_attribute_create
from scimsync.api import serializers as s
from scimsync.api.conventions import detail_response
from scimsync.api.selectors import catalogue, connection_mappings
from scimsync.api.views.base import actor, impacts_data, valid
from scimsync.sync import services


@extend_schema(tags=["catalogue"])
class AttributeList(APIView):
    """The attribute catalogue: built-in attributes, then custom ones. Not paginated: it is small."""

    required_perms = {"GET": ("mappings.view_customattribute",), "POST": ("mappings.add_customattribute",)}

    @extend_schema(responses=s.CatalogueEntrySerializer(many=True))
    def get(self, request):
        return Response(s.CatalogueEntrySerializer(catalogue(), many=True).data)

    @extend_schema(request=s.CustomAttributeCreateSerializer, responses={201: s.CatalogueEntrySerializer})
    def post(self, request):
        """Add a custom attribute `custom:NAME` under the product's extension schema."""
        created = custom_attribute_create(**valid(s.CustomAttributeCreateSerializer, request))
        entry = next(e for e in catalogue() if e.attribute.short_name == f"custom:{created.name}")
        return Response(s.CatalogueEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


def _mappings(connection: Connection) -> dict:
    return {row.attribute.short_name: row for row in connection_mappings(connection)}


@extend_schema(tags=["mappings"])
class ConnectionMappings(APIView):
    """Who owns each catalogue attribute for this connection; PATCH changes one or many at once."""

    required_perms = {"GET": ("mappings.view_attributemapping",), "PATCH": ("mappings.change_attributemapping",)}

    @extend_schema(responses=s.MappingSerializer(many=True))
    def get(self, request, pk: int):
        connection = get_object_or_404(Connection, pk=pk)
        return Response(s.MappingSerializer(connection_mappings(connection), many=True).data)

    @extend_schema(request=s.MappingChangesSerializer, responses=s.ImpactsSerializer)
    def patch(self, request, pk: int):
        """Apply the changes together (all or none); at-risk flags move at once for every user."""
        connection = get_object_or_404(Connection, pk=pk)
        changes = valid(s.MappingChangesSerializer, request)["changes"]
        with transaction.atomic():
            done = [
                (c["attribute"], c["state"], c["apply"],
                 services.mapping_update(connection=connection, actor=actor(request), **c))
                for c in changes
            ]
        return Response(impacts_data(done, True))


@extend_schema(tags=["mappings"])
class MappingPreview(APIView):
    # As in the admin's mapping editor, a preview needs the right to change.
    required_perms = {"POST": ("mappings.change_attributemapping",)}

    @extend_schema(request=s.MappingChangesSerializer, responses={200: s.ImpactsSerializer})
    def post(self, request, pk: int):
        """What the changes would do to at-risk flags, counted in users. Changes nothing."""
        connection = get_object_or_404(Connection, pk=pk)
        changes = valid(s.MappingChangesSerializer, request)["changes"]
        previews = [
            (c["attribute"], c["state"], c["apply"], services.mapping_impact_preview(connection=connection, **c))
            for c in changes
        ]
        return Response(impacts_data(previews, False))


@extend_schema(tags=["mappings"])
class ConnectionMapping(APIView):
    required_perms = {"GET": ("mappings.view_attributemapping",), "PUT": ("mappings.change_attributemapping",)}
    etag = True

    def _row(self, pk: int, attribute: str):
        connection = get_object_or_404(Connection, pk=pk)
        row = _mappings(connection).get(attribute)
        if row is None:
            raise NotFound(f"{attribute!r} is not in the attribute catalogue.")
        return connection, row

    @extend_schema(responses=s.MappingSerializer)
    def get(self, request, pk: int, attribute: str):
        return detail_response(request, s.MappingSerializer(self._row(pk, attribute)[1]).data)

    @extend_schema(request=s.MappingChangeSerializer, responses=s.ImpactsSerializer)
    def put(self, request, pk: int, attribute: str):
        """Change one mapping; the answer counts the users whose flags moved."""
        connection, _ = self._row(pk, attribute)
        try:
            s.validate_mappable(attribute)
        except ValidationError as error:
            raise ValidationError({"attribute": error.detail}) from None
        change = valid(s.MappingChangeSerializer, request)
        impact = services.mapping_update(connection=connection, attribute=attribute, state=change["state"],
                                         apply=change["apply"], actor=actor(request))
        return Response(impacts_data([(attribute, change["state"], change["apply"], impact)], True))
