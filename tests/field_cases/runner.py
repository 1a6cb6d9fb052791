"""Replays one field case (../shared/field-cases/README.md) against a live server.

One generic runner for the whole folder: requests go over HTTP; `local` steps
act in-process through the same services the admin uses.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mappings.models import Connection
from scimsync.models import AttributeState
from scimsync.sync import services
from scimsync.sync.values import normalize, read_value
from mappings.catalogue import get_attribute
from tests.conftest import ScimClient
from users.models import User



def _cases_dir() -> Path:
    """Where the field cases are: $SCIMSYNC_FIELD_CASES, else ../shared/field-cases next to the
    checkout, else /work/shared/field-cases (CI replays them from a clone elsewhere on this machine)."""
    candidates = [Path(p) for p in [os.environ.get("SCIMSYNC_FIELD_CASES")] if p]
    candidates += [Path(__file__).resolve().parents[2].parent / "shared" / "field-cases",
                   Path("/work/shared/field-cases")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


CASES_DIR = _cases_dir()
_VAR = re.compile(r"\{([A-Za-z0-9_]+)\}")


def load_cases() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(CASES_DIR.glob("FC-*.json"))]


class CaseFailure(AssertionError):
    pass


class Replay:
    def __init__(self, case: dict, client: ScimClient, connection: Connection, token: str):
        self.case = case
        self.client = client
        self.connection = connection
        self.vars: dict[str, Any] = {"run": secrets.token_hex(4), "token": token}

    # --- substitution ------------------------------------------------------

    def sub(self, value: Any) -> Any:
        if isinstance(value, str):
            whole = _VAR.fullmatch(value)
            if whole and whole.group(1) in self.vars:
                return self.vars[whole.group(1)]
            return _VAR.sub(lambda m: str(self.vars.get(m.group(1), m.group(0))), value)
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        if isinstance(value, dict):
            return {self.sub(k): self.sub(v) for k, v in value.items()}
        return value

    def sub_pattern(self, pattern: str) -> str:
        """In a ~ pattern a substituted {name} is matched literally."""
        return _VAR.sub(lambda m: re.escape(str(self.vars[m.group(1)])) if m.group(1) in self.vars else m.group(0), pattern)

    # --- running -----------------------------------------------------------

    def run(self) -> None:
        for mapping_name, to in (self.case.get("mapping") or {}).items():
            self.map(mapping_name, to)
        for index, step in enumerate(self.case["steps"], 1):
            label = f"{self.case['id']} step {index} ({step['name']})"
            if "local" in step:
                self.local(step["local"], label)
            else:
                self.request(step, label)

    def map(self, attribute: str, to: str) -> None:
        state, apply = {
            "mapped": ("mapped", "always"), "unmapped": ("unmapped", "always"), "on_create": ("mapped", "on_create"),
        }[to]
        services.mapping_update(
            connection=self.connection, attribute=attribute, state=state, apply=apply,
            actor=services.Actor("field case"),
        )

    def local(self, local: dict, label: str) -> None:
        local = self.sub(local)
        if "edit" in local:
            edit = local["edit"]
            user = User.objects.get(scim_id=edit["user"])
            services.user_local_edit(
                user=user, attribute=edit["attribute"], value=edit["value"], actor=services.Actor("field case admin")
            )
        elif "map" in local:
            self.map(local["map"]["attribute"], local["map"]["to"])
        elif "sync" in local:
            user = User.objects.get(scim_id=local["sync"]["user"])
            services.user_sync(user=user, actor=services.Actor("field case sync"))
        elif "expect" in local:
            want = local["expect"]
            user = User.objects.select_related("manager").get(scim_id=want["user"])
            attribute = get_attribute(want["attribute"])
            if "value" in want:
                actual = read_value(user, attribute)
                if normalize(actual) != normalize(want["value"]):
                    raise CaseFailure(f"{label}: {want['attribute']} is {actual!r}, expected {want['value']!r}")
            if "at_risk" in want:
                state = AttributeState.objects.filter(user=user, attribute=want["attribute"]).first()
                flag = bool(state and state.at_risk)
                if flag != want["at_risk"]:
                    raise CaseFailure(f"{label}: at_risk of {want['attribute']} is {flag}, expected {want['at_risk']}")
        else:
            raise CaseFailure(f"{label}: unknown local step {local}")

    def request(self, step: dict, label: str) -> None:
        req = self.sub(step["request"])
        path = req["path"]
        if req.get("query"):
            path += ("&" if "?" in path else "?") + urlencode({k: str(v) if not isinstance(v, str) else v for k, v in req["query"].items()})
        headers = dict(req.get("headers") or {})
        auth = step.get("auth")
        if auth == "bad":
            headers["Authorization"] = "Bearer scim_this-token-is-wrong"
        data = None
        if "raw_body" in req:
            data = req["raw_body"].encode()
        elif "body" in req:
            data = json.dumps(req["body"]).encode()
        if data is not None and not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/scim+json"
        send_auth = auth is None and not any(h.lower() == "authorization" for h in headers)
        response = self.client.request(req["method"], path, data=data, headers=headers, auth=send_auth)
        self.check(step.get("expect") or {}, response, label)

    # --- expectations ------------------------------------------------------

    def check(self, expect: dict, response, label: str) -> None:
        body_text = response.text[:2000]
        status = expect.get("status")
        if status is not None:
            allowed = status if isinstance(status, list) else [status]
            if response.status_code not in allowed:
                raise CaseFailure(f"{label}: status {response.status_code}, expected {allowed}: {body_text}")
        for name, want in (expect.get("headers") or {}).items():
            got = response.headers.get(name)
            if not self.header_matches(self.sub(want) if not str(want).startswith("~") else want, got):
                raise CaseFailure(f"{label}: header {name} is {got!r}, expected {want!r}")
        needs_body = any(k in expect for k in ("json", "absent", "count", "save"))
        body = None
        if needs_body:
            try:
                body = response.json()
            except ValueError:
                raise CaseFailure(f"{label}: body is not JSON: {body_text!r}") from None
        if "json" in expect:
            problem = self.match(expect["json"], body, "$")
            if problem:
                raise CaseFailure(f"{label}: {problem}\nbody: {json.dumps(body)[:2000]}")
        for dotted in expect.get("absent", []):
            if self.present(body, self.sub(dotted).split(".") if not dotted.startswith("urn:") else _split_absent(dotted)):
                raise CaseFailure(f"{label}: {dotted} should be absent\nbody: {json.dumps(body)[:2000]}")
        if "count" in expect:
            got = len(body.get("Resources") or [])
            if got != expect["count"]:
                raise CaseFailure(f"{label}: {got} Resources, expected {expect['count']}\nbody: {json.dumps(body)[:1500]}")
        for var, dotted in (expect.get("save") or {}).items():
            self.vars[var] = self.lookup(body, dotted.split("."), label)

    def header_matches(self, want: Any, got: str | None) -> bool:
        if got is None:
            return False
        if want == "$any":
            return True
        if isinstance(want, str) and want.startswith("~"):
            return re.fullmatch(self.sub_pattern(want[1:]), got, re.IGNORECASE | re.DOTALL) is not None
        want_s = str(want)
        if ";" not in want_s:
            got = got.split(";")[0].strip()
        return got.lower() == want_s.lower()

    def match(self, want: Any, got: Any, where: str) -> str | None:
        if want == "$any":
            return None if got is not None else f"{where} is missing"
        if isinstance(want, str) and want.startswith("~"):
            if not isinstance(got, str) or re.fullmatch(self.sub_pattern(want[1:]), got, re.IGNORECASE | re.DOTALL) is None:
                return f"{where} is {got!r}, expected to match {want!r}"
            return None
        want = self.sub(want) if not isinstance(want, (dict, list)) else want
        if isinstance(want, dict):
            if not isinstance(got, dict):
                return f"{where} is {got!r}, expected an object"
            lowered = {str(k).lower(): v for k, v in got.items()}
            for key, sub_want in want.items():
                key = self.sub(key)
                if sub_want is None:
                    if lowered.get(key.lower()) is not None:
                        return f"{where}.{key} should be null or missing"
                    continue
                if key.lower() not in lowered:
                    return f"{where}.{key} is missing"
                problem = self.match(sub_want, lowered[key.lower()], f"{where}.{key}")
                if problem:
                    return problem
            return None
        if isinstance(want, list):
            if not isinstance(got, list):
                return f"{where} is {got!r}, expected a list"
            return self.match_list(want, got, where)
        if want is None:
            return None if got is None else f"{where} is {got!r}, expected null"
        if type(want) is not type(got) or want != got:
            return f"{where} is {got!r}, expected {want!r}"
        return None

    def match_list(self, want: list, got: list, where: str) -> str | None:
        """Each expected item matches a different actual item, in any order (backtracking)."""
        def assign(i: int, used: set[int]) -> bool:
            if i == len(want):
                return True
            for j, item in enumerate(got):
                if j not in used and self.match(want[i], item, where) is None:
                    if assign(i + 1, used | {j}):
                        return True
            return False

        return None if assign(0, set()) else f"{where} is {got!r}, expected items {want!r}"

    def present(self, body: Any, parts: list[str]) -> bool:
        if not parts:
            return body is not None and body != []
        if isinstance(body, list):
            if parts[0].isdigit():
                index = int(parts[0])
                return index < len(body) and self.present(body[index], parts[1:])
            return any(self.present(item, parts) for item in body)
        if isinstance(body, dict):
            lowered = {str(k).lower(): v for k, v in body.items()}
            key = parts[0].lower()
            return key in lowered and self.present(lowered[key], parts[1:])
        return False

    def lookup(self, body: Any, parts: list[str], label: str) -> Any:
        value = body
        for part in parts:
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict):
                lowered = {str(k).lower(): v for k, v in value.items()}
                if part.lower() not in lowered:
                    raise CaseFailure(f"{label}: cannot save {'.'.join(parts)}: missing {part}")
                value = lowered[part.lower()]
            else:
                raise CaseFailure(f"{label}: cannot save {'.'.join(parts)}")
        return value


def _split_absent(dotted: str) -> list[str]:
    """An extension URN (which contains dots) is matched whole: 'urn:...:User.manager'."""
    urn, _, rest = dotted.rpartition(":")
    head, _, tail = rest.partition(".")
    parts = [f"{urn}:{head}"]
    return parts + (tail.split(".") if tail else [])
