"""One error body for every failure of the API, and the exception handler that writes it.

    {"status": 400, "code": "invalid", "detail": "...", "errors": {"value": ["..."]}}

`errors` appears on validation failures only: field name -> messages.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    """The request is valid but the resource's state does not allow it (already restored, not failed...)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The resource is not in a state that allows this."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    """If-Match named a version of the resource that is no longer the current one."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource changed since you read it (If-Match does not match its ETag); read it again."
    default_code = "precondition_failed"


class ErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        # Model validation (full_clean in a service) is a client error like any other.
        exc = exceptions.ValidationError(serializers.as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a real 500, left to Django
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(response.status_code, "invalid", "The request is not valid.",
                                   errors=_field_errors(exc.detail))
    else:
        response.data = error_body(response.status_code, str(exc.get_codes()), str(exc.detail))
    return response


def error_body(status_code: int, code: str, detail: str, *, errors: dict | None = None) -> dict:
    body = {"status": status_code, "code": code, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def _field_errors(detail) -> dict[str, list[str]]:
    """Flatten DRF's nested error detail to field -> messages ("changes.0.attribute" for nested)."""
    flat: dict[str, list[str]] = {}

    def walk(value, prefix: str) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, sub in enumerate(value):
                walk(sub, f"{prefix}.{index}" if prefix else str(index))
        elif value:
            flat.setdefault(prefix or "non_field_errors", []).extend(
                [str(v) for v in value] if isinstance(value, list) else [str(value)]
            )

    walk(detail, "")
    return flat


@csrf_exempt  # it changes nothing; without this a PUT to a mistyped URL got Django's HTML CSRF page
def not_found(request, *args, **kwargs):
    """Any /api/ URL that names no endpoint: the same body as every other error."""
    return JsonResponse(error_body(404, "not_found", f"No API endpoint at {request.path}."), status=404)
