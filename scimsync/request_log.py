"""Middleware that records every SCIM write and every failed SCIM request.

The connection page shows them decoded ("what the IdP sent recently"), and the
dashboard counts failures. Logging never breaks the response it describes.
"""

from __future__ import annotations

import json
import logging

from mappings.catalogue import catalogue_snapshot
from scimsync import rawsql
from scimsync.batch import Batch
from scimsync.models import ScimRequestLog
from scimsync.sync.decode import decode_user_write
from scimsync.sync.ownership import ownership_snapshot

logger = logging.getLogger(__name__)
SCIM_PREFIX = "/scim/v2/"


class ScimRequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(SCIM_PREFIX):
            return self.get_response(request)
        body = b""
        if request.method != "GET" and self.small(request):
            body = request.body
        # The catalogue and the mappings read once (with the token) for the request and its log row.
        with catalogue_snapshot(), ownership_snapshot():
            response = self.get_response(request)
            # A write that succeeded wrote its row with its change (log_with); the rest are written here.
            logged = getattr(request, "scim_logged", False) and response.status_code < 400
            if (self.is_write(request) or response.status_code >= 400) and not logged:
                try:
                    self.record(request, response, body)
                except Exception:
                    logger.exception("could not record SCIM request %s %s", request.method, request.path)
        return response

    @staticmethod
    def is_write(request) -> bool:
        """Reads are not logged, POST /.search included (RFC 7644 §3.4.3: a read sent as POST)."""
        return request.method not in ("GET", "HEAD", "OPTIONS") and not request.path.endswith("/.search")

    @staticmethod
    def small(request) -> bool:
        """Oversized bodies are refused with 413 by the view; never read them here."""
        from django.conf import settings

        try:
            return int(request.META.get("CONTENT_LENGTH") or 0) <= settings.SCIMSYNC["MAX_BODY_BYTES"]
        except ValueError:
            return False

    def record(self, request, response, body: bytes) -> None:
        detail = ""
        if response.status_code >= 400:
            try:
                detail = json.loads(response.content).get("detail", "")
            except (ValueError, AttributeError):
                detail = response.content[:500].decode("utf-8", "replace")
        row = log_row(request, response.status_code, detail=detail, body=body)
        if row is not None:
            batch = Batch()
            batch.insert(ScimRequestLog, [row])
            batch.execute()


def log_row(request, status: int, *, detail: str = "", body: bytes = b"") -> ScimRequestLog | None:
    """The (unsaved) log row of a SCIM request answered with `status`; None when no valid
    token named a connection: nobody's connection to show it on, and a flood of bad
    tokens must not grow the table (the 401 itself is answer enough)."""
    connection_id = getattr(request, "scim_connection_id", None)
    if connection_id is None:
        return None
    decoded = []
    is_user_write = request.path_info[len(SCIM_PREFIX):].startswith("Users") and request.method in ("POST", "PUT", "PATCH")
    if is_user_write and status < 400:
        decoded = decode_user_write(connection_id=connection_id, method=request.method, body=body,
                                    pushed=getattr(request, "scim_pushed", None),
                                    overwrote=getattr(request, "scim_overwrote", None))
    return rawsql.new(
        ScimRequestLog,
        # With the query string: of a refused GET, the filter is what tells what went wrong.
        connection_id=connection_id, method=request.method, path=_storable(request.get_full_path())[:500],
        status=status, detail=_storable(str(detail))[:2000], decoded=decoded,
    )


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which a path (%00) or an error naming it can."""
    return text.replace("\x00", "\N{REPLACEMENT CHARACTER}")


def log_with(batch: Batch, request, status: int) -> None:
    """Write the log row of a successful write in `batch`, which holds the write itself:
    one transaction and one statement for both (the middleware then writes none)."""
    row = log_row(request, status)
    if row is not None:
        batch.insert(ScimRequestLog, [row])
        request.scim_logged = True


def request_log_prune(*, now=None) -> int:
    """Delete request-log rows older than SCIMSYNC_REQUEST_LOG_DAYS; returns how many."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    cutoff = (now or timezone.now()) - timedelta(days=settings.SCIMSYNC["REQUEST_LOG_DAYS"])
    deleted, _ = ScimRequestLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted
