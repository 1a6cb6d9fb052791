"""POST /Bulk (RFC 7644 §3.7): many operations in one request.

Each operation runs through the same view method, adapter and sync-engine
service as the single request it stands for, in its own transaction (a bulk
request is not atomic, §3.7). `bulkId:<id>` in a later operation's path or
anywhere in its data names the resource an earlier POST created; an operation
that refers to a POST further down the request waits until that POST has run.
`failOnErrors` stops processing after that many errors; operations not run are
not in the response. The limits advertised in ServiceProviderConfig are
enforced with 413 (§3.7.4).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django_scim import exceptions as scim_exceptions

from scimsync.scim import discovery, errors
from scimsync.scim.urls_util import base_location
from scimsync.scim.views import (
    BulkOperation, GroupsView, ResourceView, ScimView, UsersView, scim_response,
)

logger = logging.getLogger(__name__)

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
_PATH = re.compile(r"^/(?P<type>Users|Groups)(?:/(?P<id>[^/?#]+))?/?$")
_REFERENCE = re.compile(r"^bulkId:(?P<id>.+)$")
_VIEWS: dict[str, type[ResourceView]] = {"Users": UsersView, "Groups": GroupsView}


@dataclass
class Operation:
    index: int
    method: str
    resource: str  # Users or Groups
    resource_id: str | None
    bulk_id: str | None
    version: str | None
    data: Any

    def references(self) -> set[str]:
        found = _references(self.data)
        match = _REFERENCE.match(self.resource_id or "")
        return found | ({match["id"]} if match else set())


class _Unresolved(Exception):
    def __init__(self, bulk_id: str):
        self.bulk_id = bulk_id


class BulkView(ScimView):
    http_method_names = ["post"]

    def post(self, request):
        body = self.body_json(request)
        operations, fail_on_errors = _read_request(body)
        declared = {op.bulk_id for op in operations if op.bulk_id}
        created: dict[str, str] = {}  # bulkId -> id of the resource its POST created
        failed: set[str] = set()
        results: list[tuple[int, dict]] = []
        error_count = 0
        pending = operations
        for attempt in (1, 2):
            waiting = []
            for op in pending:
                unresolved = op.references() - created.keys()
                if attempt == 1 and unresolved and unresolved <= declared - failed:
                    waiting.append(op)  # refers to a POST further down: run it after that one
                    continue
                result = self._run(request, op, created, declared)
                results.append((op.index, result))
                if int(result["status"]) >= 400:
                    error_count += 1
                    if op.bulk_id:
                        failed.add(op.bulk_id)
                    if fail_on_errors is not None and error_count >= fail_on_errors:
                        return _bulk_response(results)
            pending = waiting
        return _bulk_response(results)

    def _run(self, request, op: Operation, created: dict[str, str], declared: set[str]) -> dict:
        result: dict[str, Any] = {"method": op.method}
        if op.bulk_id:
            result["bulkId"] = op.bulk_id
        if op.version:
            result["version"] = op.version
        view = _VIEWS[op.resource]()
        view.connection = self.connection
        try:
            data = _resolve(op.data, created)
            resource_id = _resolve(op.resource_id, created)
            view.operation = BulkOperation(data=data, version=op.version)
            response = getattr(view, op.method.lower())(request, resource_id)
        except _Unresolved as e:
            error = _unresolved_error(e.bulk_id, declared)
            return {**result, "status": str(error.status), "response": error.to_dict()}
        except scim_exceptions.SCIMException as e:
            error = errors.as_scim_error(e)
            return {**result, "status": str(error.status), "response": error.to_dict()}
        except Exception:
            logger.exception("bulk operation %s %s failed", op.method, op.resource)
            error = errors.ScimError(500, "The server could not complete this operation")
            return {**result, "status": "500", "response": error.to_dict()}
        result["status"] = str(response.status_code)
        if response.get("ETag"):
            result["version"] = response["ETag"]
        if response.content:
            doc = json.loads(response.content)
            result["location"] = doc["meta"]["location"]
            if op.method == "POST" and op.bulk_id:
                created[op.bulk_id] = doc["id"]
        elif resource_id:
            url_name = "scim:users" if op.resource == "Users" else "scim:groups"
            result["location"] = base_location(request) + reverse(url_name, kwargs={"uuid": resource_id})
        return result


def _bulk_response(results: list[tuple[int, dict]]):
    """Operations in the order of the request (a deferred one is reported where it was sent)."""
    operations = [result for _, result in sorted(results, key=lambda r: r[0])]
    return scim_response({"schemas": [BULK_RESPONSE], "Operations": operations})


def _read_request(body: Any) -> tuple[list[Operation], int | None]:
    """Validate the whole BulkRequest before running anything: a malformed one changes nothing."""
    if not isinstance(body, dict):
        raise errors.invalid_syntax("the body must be a BulkRequest object")
    fields = {str(k).lower(): v for k, v in body.items()}
    schemas = fields.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
        raise errors.invalid_syntax(f"schemas must contain {BULK_REQUEST}")
    fail_on_errors = fields.get("failonerrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
    ):
        raise errors.invalid_value("failOnErrors must be a positive integer")
    raw_operations = fields.get("operations")
    if not isinstance(raw_operations, list) or not raw_operations:
        raise errors.invalid_syntax("Operations must be a non-empty array")
    limit = discovery.bulk_max_operations()
    if len(raw_operations) > limit:
        raise errors.ScimError(413, f"a bulk request may carry at most {limit} operations (maxOperations)")
    operations = [_read_operation(i, raw) for i, raw in enumerate(raw_operations)]
    seen: set[str] = set()
    for op in operations:
        if op.bulk_id in seen:
            raise errors.invalid_value(f"bulkId {op.bulk_id!r} is used twice")
        if op.bulk_id:
            seen.add(op.bulk_id)
    return operations, fail_on_errors


def _read_operation(index: int, raw: Any) -> Operation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise errors.invalid_syntax(f"{where} must be an object")
    fields = {str(k).lower(): v for k, v in raw.items()}
    method = fields.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise errors.invalid_value(f"{where}.method must be one of {', '.join(METHODS)}")
    method = method.upper()
    path = fields.get("path")
    match = _PATH.match(path) if isinstance(path, str) else None
    if match is None:
        raise errors.invalid_value(f"{where}.path must be /Users, /Groups or one of their resources")
    bulk_id = fields.get("bulkid")
    if bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id):
        raise errors.invalid_value(f"{where}.bulkId must be a non-empty string")
    if method == "POST" and bulk_id is None:
        raise errors.invalid_value(f"{where}.bulkId is required for POST (RFC 7644 §3.7)")
    version = fields.get("version")
    if version is not None and not isinstance(version, str):
        raise errors.invalid_value(f"{where}.version must be a string (an ETag)")
    if method != "DELETE" and "data" not in fields:
        raise errors.invalid_syntax(f"{where}.data is required for {method}")
    return Operation(
        index=index, method=method, resource=match["type"], resource_id=match["id"],
        bulk_id=bulk_id, version=version, data=fields.get("data"),
    )


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (match := _REFERENCE.match(item)):
            found.add(match["id"])
    return found


def _resolve(value: Any, created: dict[str, str]) -> Any:
    """Replace every "bulkId:<id>" string with the id of the resource that POST created."""
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        if match is None:
            return value
        if match["id"] not in created:
            raise _Unresolved(match["id"])
        return created[match["id"]]
    if isinstance(value, dict):
        return {k: _resolve(v, created) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, created) for v in value]
    return value


def _unresolved_error(bulk_id: str, declared: set[str]) -> errors.ScimError:
    if bulk_id not in declared:
        return errors.invalid_value(f"bulkId:{bulk_id} names no POST of this request")
    # Its POST failed, or the references are circular (RFC 7644 §3.7.2: 409).
    return errors.ScimError(409, f"bulkId:{bulk_id} could not be resolved: its POST did not create a resource")
