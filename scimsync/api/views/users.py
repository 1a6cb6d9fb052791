"""Users: list with filters, detail with each attribute's provenance, local edit, revert, journal."""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from mappings.catalogue import get_attribute
from scimsync.api import serializers as s
from scimsync.api.conventions import check_if_match, detail_response, etag_of
from scimsync.api.errors import Conflict, ErrorSerializer
from scimsync.api.filters import JournalFilter, UserFilter
from scimsync.api.selectors import journal_entries, users_with_risk
from scimsync.api.views.base import actor, valid
from scimsync.models import JournalEntry
from scimsync.sync import services
from scimsync.sync.selectors import user_attribute_rows, user_next_sync
from scimsync.sync.values import InvalidValue
from users.models import User

TAG = ["users"]


@extend_schema(tags=TAG)
class UserList(generics.ListAPIView):
    """Users, local accounts included, with how many of their attributes are at risk."""

    serializer_class = s.UserSerializer
    required_perms = {"GET": ("users.view_user",)}
    filterset_class = UserFilter
    ordering_fields = ["id", "user_name", "display_name", "date_joined", "updated_at", "at_risk_count"]
    ordering = ["user_name"]

    def get_queryset(self):
        return users_with_risk()


def _detail_context(user: User) -> dict:
    return {"rows": user_attribute_rows(user), "next_sync": user_next_sync(user)}


@extend_schema(tags=TAG)
class UserDetail(generics.RetrieveAPIView):
    """A user and every catalogue attribute: owner, current value, IdP value, local edit, at-risk state."""

    serializer_class = s.UserDetailSerializer
    required_perms = {"GET": ("users.view_user",)}
    etag = True

    def get_queryset(self):
        return users_with_risk().select_related("manager")

    def retrieve(self, request, *args, **kwargs):
        user = self.get_object()
        return detail_response(request, s.UserDetailSerializer(user, context=_detail_context(user)).data)


def _user_and_attribute(pk: int, attribute: str, **filters) -> User:
    user = get_object_or_404(User.objects.select_related("connection", "manager"), pk=pk, **filters)
    try:
        get_attribute(attribute)
    except KeyError:
        raise NotFound(f"{attribute!r} is not in the attribute catalogue.") from None
    return user


def _row_data(user: User, attribute: str) -> dict:
    user.refresh_from_db()
    context = _detail_context(user)
    row = next(r for r in context["rows"] if r.attribute.short_name == attribute)
    return s.AttributeRowSerializer(row, context=context).data


def _row_response(user: User, attribute: str) -> Response:
    return Response(_row_data(user, attribute))


@extend_schema(tags=TAG)
class UserAttribute(APIView):
    required_perms = {"GET": ("users.view_user",), "PUT": ("users.change_user",)}
    etag = True
    if_match = ("PUT",)

    @extend_schema(responses=s.AttributeRowSerializer)
    def get(self, request, pk: int, attribute: str):
        """One attribute: its value and whether the next sync will overwrite it."""
        return detail_response(request, _row_data(_user_and_attribute(pk, attribute), attribute))

    @extend_schema(request=s.LocalEditSerializer, responses=s.AttributeRowSerializer)
    def put(self, request, pk: int, attribute: str):
        """A local edit, as in the admin: kept, never refused; flagged at risk at once if the IdP owns it.

        With If-Match (the ETag of a GET of this attribute) the edit is made only if
        nothing changed since that GET: a help-desk tool then never overwrites a
        colleague's edit or a push it has not seen."""
        user = _user_and_attribute(pk, attribute)
        value = valid(s.LocalEditSerializer, request)["value"]
        with transaction.atomic():
            if "If-Match" in request.headers:
                # The user's row lock (the service takes it too) holds off a concurrent edit
                # between the comparison and the write.
                User.objects.select_for_update(of=("self",)).only("pk").get(pk=user.pk)
                check_if_match(request, _row_data(user, attribute))
            try:
                services.user_local_edit(user=user, attribute=attribute, value=value, actor=actor(request))
            except InvalidValue as error:
                raise ValidationError({"value": [str(error)]}) from None
        data = _row_data(user, attribute)
        return Response(data, headers={"ETag": etag_of(data)})


@extend_schema(tags=TAG)
class UserAttributeRevert(APIView):
    required_perms = {"POST": ("users.revert_user_attribute",)}

    @extend_schema(request=None, responses={200: s.AttributeRowSerializer, 409: ErrorSerializer})
    def post(self, request, pk: int, attribute: str):
        """Put the IdP value back now and drop the local edit. 409 when the IdP never sent a value."""
        user = _user_and_attribute(pk, attribute, connection__isnull=False)
        try:
            reverted = services.user_revert_attribute(user=user, attribute=attribute, actor=actor(request))
        except InvalidValue as error:
            raise Conflict(f"Not reverted: {error}") from None
        if not reverted:
            raise Conflict(f"The IdP never sent {attribute}; there is nothing to revert to.")
        return _row_response(user, attribute)


@extend_schema(tags=TAG)
class UserJournal(generics.ListAPIView):
    """Pushes, syncs, local edits, reverts and restores of one user, newest first."""

    serializer_class = s.JournalEntrySerializer
    required_perms = {"GET": ("scimsync.view_journalentry",)}
    filterset_class = JournalFilter
    ordering_fields = ["id", "created_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL arguments
            return JournalEntry.objects.none()
        user = get_object_or_404(User, pk=self.kwargs["pk"])
        return journal_entries().filter(user=user)
