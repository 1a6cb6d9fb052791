"""Sync runs: "sync now" for some users or a whole connection, progress, retry, approval."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from scimsync.api import serializers as s
from scimsync.api.conventions import detail_response
from scimsync.api.errors import Conflict, ErrorSerializer
from scimsync.api.filters import SyncRunFilter
from scimsync.models import SyncRun
from scimsync.api.views.base import valid
from scimsync.sync import runs

TAG = ["sync runs"]


@extend_schema(tags=TAG)
class SyncRunList(generics.ListAPIView):
    """Sync runs, newest first; POST is "Sync now"."""

    serializer_class = s.SyncRunSerializer
    required_perms = {"GET": ("scimsync.view_syncrun",), "POST": ("users.sync_user",)}
    filterset_class = SyncRunFilter
    ordering_fields = ["id", "created_at", "finished_at"]
    ordering = ["-created_at", "-id"]
    queryset = SyncRun.objects.all()

    @extend_schema(request=s.SyncRunCreateSerializer, responses={201: s.SyncRunSerializer})
    def post(self, request):
        """Record a run and queue it (or hold it for approval when it would overwrite too many users);
        poll the run for its progress."""
        data = valid(s.SyncRunCreateSerializer, request)
        run = runs.sync_run_start(connection=data["connection"], user_ids=data["user_ids"],
                                  requested_by=request.user)
        run.refresh_from_db()  # an eager or very fast worker may have moved it on already
        return Response(s.SyncRunSerializer(run).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=TAG)
class SyncRunDetail(generics.RetrieveAPIView):
    """One run with its progress: poll it until `state` is succeeded or failed."""

    serializer_class = s.SyncRunSerializer
    required_perms = {"GET": ("scimsync.view_syncrun",)}
    queryset = SyncRun.objects.all()
    etag = True  # a monitor polling an unchanged run gets 304 without a body

    def retrieve(self, request, *args, **kwargs):
        return detail_response(request, self.get_serializer(self.get_object()).data)


@extend_schema(tags=TAG)
class SyncRunDryRun(APIView):
    required_perms = {"GET": ("scimsync.view_syncrun",)}

    @extend_schema(responses={200: s.DryRunRowSerializer(many=True), 409: ErrorSerializer})
    def get(self, request, pk: int):
        """What a held run would overwrite (at most 500 rows), as the admin shows before approval.
        409 unless the run is held: once it has run, its journal tells what it did."""
        run = get_object_or_404(SyncRun, pk=pk)
        if run.state != SyncRun.State.HELD:
            raise Conflict(f"Only held runs have a dry run; this one is {run.state}.")
        return Response(s.DryRunRowSerializer(runs.sync_run_preview(run=run), many=True).data)


@extend_schema(tags=TAG)
class SyncRunRetry(APIView):
    required_perms = {"POST": ("users.sync_user",)}

    @extend_schema(request=None, responses={201: s.SyncRunSerializer, 409: ErrorSerializer})
    def post(self, request, pk: int):
        """Retry a failed run as a new run over the same users. 409 unless the run failed."""
        run = get_object_or_404(SyncRun.objects.select_related("connection"), pk=pk)
        if run.state != SyncRun.State.FAILED:
            raise Conflict(f"Only failed runs are retried; this one is {run.state}.")
        new = runs.sync_run_retry(run=run, requested_by=request.user)
        new.refresh_from_db()
        return Response(s.SyncRunSerializer(new).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=TAG)
class SyncRunApprove(APIView):
    required_perms = {"POST": ("scimsync.approve_syncrun",)}

    @extend_schema(request=None, responses={200: s.SyncRunSerializer, 409: ErrorSerializer})
    def post(self, request, pk: int):
        """Let a held run go ahead (see its users_at_risk first). 409 unless the run is held."""
        run = get_object_or_404(SyncRun, pk=pk)
        if not runs.sync_run_approve(run=run, approved_by=request.user):
            raise Conflict(f"Only held runs are approved; this one is {run.state}.")
        run.refresh_from_db()
        return Response(s.SyncRunSerializer(run).data)
