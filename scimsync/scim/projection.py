"""`attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9), honouring `returned`.

RFC 7643 §7: an attribute `returned: always` (id) is in every representation,
whatever the client asks; `never` (password) is in none; `request` only when
named in `attributes`; `default` unless excluded. The characteristics are read
from the schema documents /Schemas serves, so the two cannot disagree.
"""

from __future__ import annotations

from functools import cache

from mappings.catalogue import CORE_USER, ENTERPRISE_USER
from scimsync.scim.schema import CORE_GROUP, KNOWN_URNS, canonical_urn

# Common attributes (RFC 7643 §3.1): id is returned always; schemas is the envelope.
_COMMON_ALWAYS = {"id", "schemas"}
# meta is kept by `attributes` too: clients read meta.version (the ETag) and meta.location.
_KEPT = {"meta"}


def parse_list(raw: str | None) -> list[tuple[str | None, str, str | None]]:
    """'userName,name.givenName,urn:...:User:department' -> [(urn, attr, sub)], lowercased."""
    paths = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        urn = None
        if item.lower().startswith("urn:"):
            whole = canonical_urn(item)
            if whole in KNOWN_URNS.values():  # a whole schema: an extension is one top-level key
                if whole not in (CORE_USER, CORE_GROUP):
                    paths.append((None, whole.lower(), None))
                continue
            head, _, attr = item.rpartition(":")
            urn = canonical_urn(head)
            if urn in (CORE_USER, CORE_GROUP):
                urn = None
            item = attr
            if not item:
                continue
        attr, _, sub = item.partition(".")
        paths.append((urn, attr.lower(), sub.lower() or None))
    return paths


@cache
def _returned() -> dict[tuple[str | None, str], str]:
    """(urn or None for core, lower-case name) -> returned, from the served schema documents."""
    from scimsync.scim.discovery import attribute_definitions

    table: dict[tuple[str | None, str], str] = {}
    for urn, key in ((CORE_USER, None), (CORE_GROUP, None), (ENTERPRISE_USER, ENTERPRISE_USER)):
        for attribute in attribute_definitions(urn):
            table[(key, attribute["name"].lower())] = attribute.get("returned", "default")
    for name in _COMMON_ALWAYS:
        table[(None, name)] = "always"
    return table


def returned(urn: str | None, attr: str) -> str:
    return _returned().get((urn, attr.lower()), "default")


def wants(raw_excluded: str | None, attr: str) -> bool:
    """Whether an expensive attribute (members, groups) must be built at all."""
    return not any(u is None and a == attr.lower() and s is None for u, a, s in parse_list(raw_excluded))


def project(doc: dict, attributes: str | None, excluded: str | None) -> dict:
    doc = _drop_never_and_request(doc, parse_list(attributes))
    if attributes:
        return _include(doc, parse_list(attributes))
    if excluded:
        return _exclude(doc, parse_list(excluded))
    return doc


def _drop_never_and_request(doc: dict, requested) -> dict:
    """Remove `never` attributes, and `request` ones the client did not name.

    Only names in _hidden() can go, and a User document usually has none (password
    is never sent back): the common case tests each key against a set and copies
    nothing."""
    hidden = _hidden()
    asked = {(u, a) for u, a, _ in requested}
    out = {}
    for key, value in doc.items():
        lower = key.lower()
        if lower.startswith("urn:"):
            if isinstance(value, dict):
                urn = canonical_urn(key)
                names = hidden.get(urn)
                if names and any(k.lower() in names for k in value):
                    value = {k: v for k, v in value.items() if _keep(returned(urn, k), (urn, k.lower()) in asked)}
        elif lower in hidden[None] and not _keep(returned(None, key), (None, lower) in asked):
            continue
        out[key] = value
    return out


@cache
def _hidden() -> dict[str | None, frozenset[str]]:
    """Per schema (None for core), the lower-case names returned `never` or `request`."""
    found: dict[str | None, set[str]] = {None: set()}
    for (urn, name), characteristic in _returned().items():
        if characteristic in ("never", "request"):
            found.setdefault(urn, set()).add(name)
    return {urn: frozenset(names) for urn, names in found.items()}


def _keep(characteristic: str, asked: bool) -> bool:
    return characteristic != "never" and (characteristic != "request" or asked)


def _find(d: dict, name: str) -> str | None:
    return next((k for k in d if k.lower() == name), None)


def _include(doc: dict, paths) -> dict:
    out = {k: v for k, v in doc.items() if returned(None, k) == "always" or k in _KEPT}
    # Sub-attributes asked of each multi-valued attribute so far (None: all of it), so that
    # `emails.value,emails.type` keeps both in each entry, not the last one named.
    entry_subs: dict[tuple[str | None, str], set[str] | None] = {}
    for urn, attr, sub in paths:
        src = doc
        if urn is not None:
            key = _find(doc, urn.lower())
            if key is None or not isinstance(doc[key], dict):
                continue
            src = doc[key]
            target = out.setdefault(key, {})
        else:
            target = out
        name = _find(src, attr)
        if name is None:
            continue
        value = src[name]
        if sub is None:
            target[name] = value
            entry_subs[(urn, attr)] = None
        elif isinstance(value, dict):
            sub_key = _find(value, sub)
            if sub_key is not None:
                target.setdefault(name, {})[sub_key] = value[sub_key]
        elif isinstance(value, list):
            subs = entry_subs.setdefault((urn, attr), set())
            if subs is None:
                continue  # the whole attribute was asked for already
            subs.add(sub)
            entries = [e for e in value if isinstance(e, dict)]
            picked = [{k: v for k, v in e.items() if k.lower() in subs} for e in entries]
            kept = [p for p in picked if p]
            if kept:  # `emails.nope` names nothing: no emails, not an empty list (RFC 7643 §2.5)
                target[name] = kept
    _sync_schemas(out)
    return out


def _exclude(doc: dict, paths) -> dict:
    out = dict(doc)
    for urn, attr, sub in paths:
        target = out
        if urn is not None:
            key = _find(out, urn.lower())
            if key is None or not isinstance(out[key], dict):
                continue
            target = out[key] = dict(out[key])
        name = _find(target, attr)
        if name is None or returned(urn, name) == "always":
            continue
        if sub is None:
            del target[name]
        elif isinstance(target[name], dict):
            inner = dict(target[name])
            sub_key = _find(inner, sub)
            if sub_key:
                del inner[sub_key]
            target[name] = inner
        elif isinstance(target[name], list):
            entries = [{k: v for k, v in e.items() if k.lower() != sub} for e in target[name] if isinstance(e, dict)]
            target[name] = [e for e in entries if e]
    for key in [k for k, v in out.items() if k.lower().startswith("urn:") and v == {}]:
        del out[key]
    _sync_schemas(out)
    return out


def _sync_schemas(doc: dict) -> None:
    """`schemas` lists the extensions present in this representation and no others."""
    if "schemas" in doc:
        doc["schemas"] = [
            s for s in doc["schemas"] if not s.lower().startswith("urn:") or s in (CORE_USER, CORE_GROUP)
            or any(k == s for k in doc)
        ]
