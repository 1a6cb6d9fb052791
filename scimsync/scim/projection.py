"""`attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9)."""

from __future__ import annotations

from mappings.catalogue import CORE_USER
from scimsync.scim.schema import CORE_GROUP, canonical_urn

# Returned whatever the client asks (RFC 7643 §7 "returned: always").
ALWAYS = {"id", "schemas"}


def parse_list(raw: str | None) -> list[tuple[str | None, str, str | None]]:
    """'userName,name.givenName,urn:...:User:department' -> [(urn, attr, sub)], lowercased."""
    paths = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        urn = None
        if item.lower().startswith("urn:"):
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


def wants(raw_excluded: str | None, attr: str) -> bool:
    """Whether an expensive attribute (members, groups) must be built at all."""
    return not any(u is None and a == attr.lower() and s is None for u, a, s in parse_list(raw_excluded))


def project(doc: dict, attributes: str | None, excluded: str | None) -> dict:
    if attributes:
        return _include(doc, parse_list(attributes))
    if excluded:
        return _exclude(doc, parse_list(excluded))
    return doc


def _find(d: dict, name: str) -> str | None:
    return next((k for k in d if k.lower() == name), None)


def _include(doc: dict, paths) -> dict:
    out = {k: v for k, v in doc.items() if k in ALWAYS or k == "meta"}
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
        elif isinstance(value, dict):
            sub_key = _find(value, sub)
            if sub_key is not None:
                target.setdefault(name, {})[sub_key] = value[sub_key]
        elif isinstance(value, list):
            picked = [{k: v for k, v in e.items() if k.lower() == sub} for e in value if isinstance(e, dict)]
            target[name] = [p for p in picked if p]
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
        if name is None or name in ALWAYS:
            continue
        if sub is None:
            del target[name]
        elif isinstance(target[name], dict):
            inner = dict(target[name])
            sub_key = _find(inner, sub)
            if sub_key:
                del inner[sub_key]
            target[name] = inner
    return out
