"""Property: random PATCH sequences sent to /Users/{id} leave the user exactly as a small reference
model of RFC 7644 §3.5.2 says (add, replace, remove; with and without path; value-filter paths;
sub-attributes; multi-valued attributes with one primary; the Entra dialect; atomicity).

The model is a plain dict in the shape of a normalised GET document and is
written from the RFC, not from scimsync/scim/patch.py. Where the RFC leaves a
choice, the model states the product's documented one:

- §3.5.2.1/§3.5.2.3 on a complex attribute (name, an email entry): the
  sub-attributes given replace theirs, the others stay;
- emails and phoneNumbers hold one entry per catalogue type (DESIGN.md's
  attributes email_work, phone_mobile...), so an added entry of a type already
  present updates that entry instead of adding a second one;
- a value-filter path that matches nothing, with add or replace, creates the
  entry the filter's `type eq` describes (Entra relies on it; FC-05);
- an entry left without a `value` is gone; null or "" as a value clears;
- setting `primary` true on one value makes every other value non-primary
  (§3.5.2, RFC 7643 §2.4); a false `primary` reads like no `primary`.

Every PATCH response, and a final GET, must equal the model; a PATCH with an
invalid operation anywhere must be 400 and change nothing (§3.5.2: atomic).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.django_db,
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")]

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SIMPLE = ["title", "displayName", "nickName", "userType"]
NAME_SUBS = ["givenName", "familyName", "middleName"]
ENT_SIMPLE = ["department", "costCenter", "employeeNumber"]
TYPES = {"emails": ["work", "home", "other"], "phoneNumbers": ["work", "mobile", "home"]}
TEXT = st.sampled_from(["Engineer", "Sales", "Ops Lead", "Ünïcode ✓", "x"])
VALUES = {"emails": st.sampled_from(["a@example.com", "B@Example.org", "c@example.net"]),
          "phoneNumbers": st.sampled_from(["+1 555 0100", "555-0199", "0044 20 7946 0000"])}
_serial = itertools.count()

# --- the reference model ---------------------------------------------------------------------

Model = dict[str, Any]


def normalise(doc: dict) -> Model:
    """A GET/PATCH response in the model's shape: entries by type, manager by id, no read-only parts."""
    out: Model = {}
    for key in ("userName", "active", *SIMPLE):
        if doc.get(key) not in (None, ""):
            out[key] = doc[key]
    if doc.get("name"):
        out["name"] = {k: v for k, v in doc["name"].items() if v not in (None, "")}
    for plural in TYPES:
        entries = {}
        for entry in doc.get(plural, []):
            kept = {"value": entry["value"]}
            if entry.get("primary") is True:
                kept["primary"] = True
            entries[entry["type"].lower()] = kept  # types compare case-insensitively; "Work" is work
        if entries:
            out[plural] = entries
    ext = dict(doc.get(ENT, {}))
    if isinstance(ext.get("manager"), dict):
        ext["manager"] = ext["manager"]["value"]
    if ext:
        out[ENT] = ext
    return out


def _set(container: dict, key: str, value: Any) -> None:
    if value is None or value == "":
        container.pop(key, None)
    else:
        container[key] = value


def _tidy(model: Model) -> None:
    for key in ("name", ENT, *TYPES):
        if key in model and not model[key]:
            del model[key]


def set_simple(attr, value):
    return lambda m: _set(m, attr, value)


def set_active(value: bool):
    return lambda m: m.__setitem__("active", value)


def set_name(parts: dict):
    def apply(m):
        name = m.setdefault("name", {})
        for sub, value in parts.items():
            _set(name, sub, value)
    return apply


def clear(key):
    return lambda m: m.pop(key, None)


def set_ext(parts: dict):
    def apply(m):
        ext = m.setdefault(ENT, {})
        for attr, value in parts.items():
            _set(ext, attr, value)
    return apply


def _primary_wins(entries: dict, winner: str) -> None:
    for kind, entry in entries.items():
        if kind != winner:
            entry.pop("primary", None)


def merge_entries(plural: str, given: list[dict], *, replace_all: bool):
    """add/replace on the whole attribute: entries by type, the given sub-attributes replacing theirs."""
    def apply(m):
        entries = {} if replace_all else m.setdefault(plural, {})
        for entry in given:
            target = entries.setdefault(entry["type"], {})
            target.update({k: v for k, v in entry.items() if k != "type"})
            if target.get("primary") is False:
                target.pop("primary")
            if entry.get("primary") is True:
                _primary_wins(entries, entry["type"])
        m[plural] = entries
    return apply


def upsert_entry(plural: str, kind: str, parts: dict):
    """add/replace `plural[type eq kind]` (or `.value`, `.primary`): update it, or create it."""
    def apply(m):
        entries = m.setdefault(plural, {})
        target = dict(entries.get(kind, {}))
        for sub, value in parts.items():
            if sub == "primary" and value is not True:
                target.pop("primary", None)
            else:
                _set(target, sub, value)
        if "value" not in target:
            entries.pop(kind, None)  # an entry without a value is no entry
            return
        entries[kind] = target
        if target.get("primary") is True and parts.get("primary") is True:
            _primary_wins(entries, kind)
    return apply


def remove_entry_by_type(plural: str, kind: str):
    return lambda m: m.get(plural, {}).pop(kind, None)


def remove_entry_by_value(plural: str, value: str):
    """remove `plural[value eq "x"]`: emails and phone numbers compare case-insensitively."""
    def apply(m):
        entries = m.get(plural, {})
        for kind in [k for k, e in entries.items() if e["value"].casefold() == value.casefold()]:
            del entries[kind]
    return apply


def remove_primary(plural: str, kind: str):
    return lambda m: m.get(plural, {}).get(kind, {}).pop("primary", None)


def run(model: Model, effects) -> Model:
    out = json.loads(json.dumps(model))
    for effect in effects:
        effect(out)
        _tidy(out)
    return out


# --- operations: (the JSON the IdP sends, the model's effect) ---------------------------------

OP_NAMES = {op: st.sampled_from([op, op.capitalize(), op.upper()]) for op in ("add", "replace", "remove")}
SET_OP = st.sampled_from(["add", "replace"]).flatmap(lambda op: OP_NAMES[op])
MAYBE_EMPTY = st.one_of(TEXT, TEXT, TEXT, st.sampled_from([None, ""]))


def operation(op, path=None, value=..., **_):
    body: dict[str, Any] = {"op": op}
    if path is not None:
        body["path"] = path
    if value is not ...:
        body["value"] = value
    return body


@st.composite
def simple_ops(draw):
    attr = draw(st.sampled_from(SIMPLE))
    if draw(st.integers(0, 4)) == 0:
        return operation(draw(OP_NAMES["remove"]), attr), [clear(attr)]
    value = draw(MAYBE_EMPTY)
    spelled = draw(st.sampled_from([attr, attr.lower(), attr.upper()]))  # RFC 7643 §2.1
    if draw(st.booleans()):
        return operation(draw(SET_OP), spelled, value), [set_simple(attr, value)]
    return operation(draw(SET_OP), value={spelled: value}), [set_simple(attr, value)]


@st.composite
def active_ops(draw):
    value = draw(st.booleans())
    sent = draw(st.sampled_from([value, str(value), str(value).lower()]))  # Entra: "True" / "False"
    if draw(st.booleans()):
        return operation(draw(OP_NAMES["replace"]), "active", sent), [set_active(value)]
    return operation(draw(OP_NAMES["replace"]), value={"active": sent}), [set_active(value)]


@st.composite
def name_ops(draw):
    form = draw(st.sampled_from(["sub", "sub-remove", "object", "dotted", "pathless-object", "remove"]))
    sub = draw(st.sampled_from(NAME_SUBS))
    if form == "remove":
        return operation(draw(OP_NAMES["remove"]), "name"), [clear("name")]
    if form == "sub-remove":
        return operation(draw(OP_NAMES["remove"]), f"name.{sub}"), [set_name({sub: None})]
    value = draw(MAYBE_EMPTY)
    if form == "sub":
        return operation(draw(SET_OP), f"name.{sub}", value), [set_name({sub: value})]
    if form == "dotted":  # FC-03: Entra's pathless replace with "name.givenName" keys
        return operation(draw(SET_OP), value={f"name.{sub}": value}), [set_name({sub: value})]
    parts = draw(st.dictionaries(st.sampled_from(NAME_SUBS), TEXT, min_size=1, max_size=3))
    if form == "object":  # §3.5.2.3: sub-attributes not given are left unchanged
        return operation(draw(SET_OP), "name", parts), [set_name(parts)]
    return operation(draw(SET_OP), value={"name": parts}), [set_name(parts)]


@st.composite
def entries_lists(draw, plural):
    kinds = draw(st.lists(st.sampled_from(TYPES[plural]), min_size=1, max_size=2, unique=True))
    primary_at = draw(st.sampled_from([None, *range(len(kinds))]))
    entries = []
    for i, kind in enumerate(kinds):
        entry = {"type": kind, "value": draw(VALUES[plural])}
        if i == primary_at:
            entry["primary"] = True
        elif draw(st.integers(0, 3)) == 0:
            entry["primary"] = False
        entries.append(entry)
    return entries


@st.composite
def multi_ops(draw):
    plural = draw(st.sampled_from(sorted(TYPES)))
    kind = draw(st.sampled_from(TYPES[plural]))
    where = f'{plural}[type eq "{draw(st.sampled_from([kind, kind.upper()]))}"]'
    form = draw(st.sampled_from(["add-list", "replace-list", "remove-all", "set-value", "set-value-pathless",
                                 "set-primary", "set-entry", "remove-entry", "remove-value",
                                 "remove-by-value", "remove-primary"]))
    if form in ("add-list", "replace-list"):
        given = draw(entries_lists(plural))
        wire = [{k: ("True" if v is True and draw(st.booleans()) else v) for k, v in e.items()} for e in given]
        op = draw(OP_NAMES["add" if form == "add-list" else "replace"])
        return operation(op, plural, wire), [merge_entries(plural, given, replace_all=form == "replace-list")]
    if form == "remove-all":
        return operation(draw(OP_NAMES["remove"]), plural), [clear(plural)]
    if form in ("set-value", "set-value-pathless"):
        value = draw(VALUES[plural])
        effect = [upsert_entry(plural, kind, {"value": value})]
        if form == "set-value":
            return operation(draw(SET_OP), f"{where}.value", value), effect
        return operation(draw(SET_OP), value={f"{where}.value": value}), effect  # Entra's pathless form
    if form == "set-primary":
        flag = draw(st.booleans())
        sent = draw(st.sampled_from([flag, str(flag)]))
        return operation(draw(SET_OP), f"{where}.primary", sent), [upsert_entry(plural, kind, {"primary": flag})]
    if form == "set-entry":
        parts = {"value": draw(VALUES[plural])}
        if draw(st.booleans()):
            parts["primary"] = draw(st.booleans())
        return operation(draw(SET_OP), where, parts), [upsert_entry(plural, kind, parts)]
    if form == "remove-entry":
        return operation(draw(OP_NAMES["remove"]), where), [remove_entry_by_type(plural, kind)]
    if form == "remove-value":
        return operation(draw(OP_NAMES["remove"]), f"{where}.value"), [remove_entry_by_type(plural, kind)]
    if form == "remove-primary":
        return operation(draw(OP_NAMES["remove"]), f"{where}.primary"), [remove_primary(plural, kind)]
    value = draw(VALUES[plural])
    sent = draw(st.sampled_from([value, value.upper()]))
    return (operation(draw(OP_NAMES["remove"]), f'{plural}[value eq "{sent}"]'),
            [remove_entry_by_value(plural, value)])


def enterprise_ops(managers: list[str]):
    @st.composite
    def build(draw):
        attr = draw(st.sampled_from(ENT_SIMPLE))
        form = draw(st.sampled_from(["urn-path", "urn-pathless", "extension-object", "remove",
                                     "manager", "manager-remove", "unqualified"]))
        if form == "manager":  # Entra: a bare id at the full URN path; others {"value": id}
            manager = draw(st.sampled_from(managers))
            sent = draw(st.sampled_from([manager, {"value": manager}]))
            return operation(draw(SET_OP), f"{ENT}:manager", sent), [set_ext({"manager": manager})]
        if form == "manager-remove":
            return operation(draw(OP_NAMES["remove"]), f"{ENT}:manager"), [set_ext({"manager": None})]
        if form == "remove":
            return operation(draw(OP_NAMES["remove"]), f"{ENT}:{attr}"), [set_ext({attr: None})]
        value = draw(MAYBE_EMPTY)
        if form == "urn-path":
            return operation(draw(SET_OP), f"{ENT}:{attr}", value), [set_ext({attr: value})]
        if form == "unqualified":  # RFC 7644 §3.10: an extension attribute by its bare name
            return operation(draw(SET_OP), attr, value), [set_ext({attr: value})]
        if form == "urn-pathless":  # Entra: {"urn:...:User:department": "x"} without a path
            return operation(draw(SET_OP), value={f"{ENT}:{attr}": value}), [set_ext({attr: value})]
        parts = draw(st.dictionaries(st.sampled_from(ENT_SIMPLE), TEXT, min_size=1, max_size=2))
        return operation(draw(SET_OP), ENT, parts), [set_ext(parts)]
    return build()


# Operations the server must refuse (RFC 7644 §3.12), each making the whole PATCH a no-op.
INVALID = st.sampled_from([
    {"op": "replace", "path": "shoeSize", "value": "44"},
    {"op": "replace", "path": "title", "value": 12},
    {"op": "add", "path": 'emails[type eq "work"', "value": "x"},
    {"op": "remove"},
    {"op": "jump", "path": "title", "value": "x"},
    {"op": "replace", "path": "active", "value": "maybe"},
    {"op": "replace", "path": "id", "value": "00000000-0000-4000-8000-000000000000"},
    {"op": "add", "path": "emails", "value": [{"type": "work", "value": "x@example.com", "primary": "often"}]},
    {"op": "replace", "path": "name.nickname", "value": "x"},
])


def patches(managers: list[str]):
    one = st.one_of(simple_ops(), active_ops(), name_ops(), multi_ops(), multi_ops(), enterprise_ops(managers))

    @st.composite
    def build(draw):
        ops = draw(st.lists(one, min_size=1, max_size=4))
        bodies, effects = [o for o, _ in ops], [e for _, es in ops for e in es]
        if draw(st.integers(0, 6)) == 0:
            bodies.insert(draw(st.integers(0, len(bodies))), draw(INVALID))
            return bodies, None  # None: must be refused whole
        return bodies, effects

    return st.lists(build(), min_size=1, max_size=4)


# --- the property -------------------------------------------------------------------------------

START = {
    "title": "Engineer", "active": True, "name": {"givenName": "Ann", "familyName": "Lee"},
    "emails": [{"type": "work", "value": "ann@example.com", "primary": True},
               {"type": "home", "value": "ann@home.example"}],
    "phoneNumbers": [{"type": "mobile", "value": "+44 7700 900000"}],
}


def test_random_patch_sequences_match_the_reference_model(scim_client):
    """RFC 7644 §3.5.2 (add §3.5.2.1, remove §3.5.2.2, replace §3.5.2.3), atomic PATCH, op names in
    any case, the Entra dialect (booleans as strings, pathless URN and dotted keys, manager as a
    bare id), one primary per multi-valued attribute (RFC 7643 §2.4): responses and GET equal the model."""
    managers = []
    for boss in ("boss1", "boss2"):
        made = scim_client.request("POST", "/Users", {"schemas": [CORE], "userName": f"{boss}@example.com"})
        managers.append(made.json()["id"])
    stats = {"applied": 0, "refused": 0, "changed": 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sequence=patches(managers))
    def check(sequence):
        user_name = f"user{next(_serial)}@example.com"
        body = {"schemas": [CORE, ENT], "userName": user_name, **json.loads(json.dumps(START)),
                ENT: {"department": "R&D", "manager": {"value": managers[0]}}}
        created = scim_client.request("POST", "/Users", body)
        assert created.status_code == 201, created.content
        user_id = created.json()["id"]
        model = normalise(created.json())
        for operations, effects in sequence:
            response = scim_client.request("PATCH", f"/Users/{user_id}",
                                           {"schemas": [PATCH_OP], "Operations": operations})
            if effects is None:
                assert response.status_code == 400, (operations, response.content)
                error = response.json()
                assert error["status"] == "400" and error.get("scimType"), error
                stats["refused"] += 1
            else:
                assert response.status_code == 200, (operations, response.content)
                expected = run(model, effects)
                assert normalise(response.json()) == expected, operations
                stats["changed"] += expected != model
                stats["applied"] += 1
                model = expected
            current = scim_client.request("GET", f"/Users/{user_id}")
            assert normalise(current.json()) == model, operations

    check()
    # Not vacuous: most PATCHes changed the user, and some were refused whole.
    assert stats["refused"] > 0 and stats["changed"] > stats["applied"] // 2, stats
