"""SCIM errors in the RFC 7644 §3.12 format: the Error schema, status as a string."""

from __future__ import annotations

from django_scim import exceptions

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(exceptions.SCIMException):
    """An error the client can act on; rendered as an RFC 7644 §3.12 body."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail, status=status, scim_type=scim_type)

    def to_dict(self) -> dict:
        body = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class Unauthorized(ScimError):
    """401. `bearer_error` goes into WWW-Authenticate (RFC 6750 §3.1): "invalid_token" for
    a token that was sent but is unknown, expired or revoked; none when none was sent."""

    def __init__(self, detail: str, bearer_error: str | None = None):
        super().__init__(401, detail)
        self.bearer_error = bearer_error


def bad_request(detail: str, scim_type: str | None = None) -> ScimError:
    return ScimError(400, detail, scim_type)


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def not_found(resource_id: str) -> ScimError:
    return ScimError(404, f"Resource {resource_id} not found")


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def as_scim_error(error: exceptions.SCIMException) -> ScimError:
    """Re-render an error raised inside django-scim2 in our format."""
    if isinstance(error, ScimError):
        return error
    return ScimError(error.status, error.detail, error.scim_type)
