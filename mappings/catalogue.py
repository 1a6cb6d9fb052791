"""The attribute catalogue: every profile field a connection can map.

Each attribute has a short name (admin, REST API, field cases) and a SCIM path
(wire format, /Schemas). The catalogue is code, not data: adding an attribute
means a model field on users.User and one line here (see docs/add-an-attribute.md).
Custom attributes live in the CustomAttribute table and are added at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# The product's own extension schema, for admin-defined custom attributes.
CUSTOM_USER = "urn:ietf:params:scim:schemas:extension:scimsync:2.0:User"


class Kind(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    ADDRESS = "address"  # a whole address object (streetAddress, locality...)
    REFERENCE = "reference"  # the manager: the SCIM id of another user


class Slot(StrEnum):
    """Where on the SCIM resource an attribute lives."""

    TOP = "top"  # a top-level core attribute: title
    NAME = "name"  # a sub-attribute of name: name.givenName
    MULTI = "multi"  # the value of one typed entry of a multi-valued attribute
    ENTERPRISE = "enterprise"  # an attribute of the enterprise extension
    CUSTOM = "custom"  # an attribute of the product's extension


@dataclass(frozen=True)
class Attribute:
    short_name: str
    scim_path: str
    kind: Kind
    slot: Slot
    # SCIM attribute name inside its slot: "title", "givenName", "emails", "department".
    scim_name: str
    # The "type" of the multi-valued entry (emails of type "work"), for Slot.MULTI.
    entry_type: str | None = None
    # userName, externalId and active are IdP-owned for every provisioned user.
    always_idp: bool = False
    # The users.User field holding the value; custom attributes have none.
    field: str | None = None
    case_exact: bool = False

    @property
    def is_custom(self) -> bool:
        return self.slot is Slot.CUSTOM


def _top(short: str, name: str, kind: Kind = Kind.STRING, *, field: str | None = None, **kw) -> Attribute:
    return Attribute(short, name, kind, Slot.TOP, name, field=field or short, **kw)


def _name(short: str, sub: str) -> Attribute:
    return Attribute(short, f"name.{sub}", Kind.STRING, Slot.NAME, sub, field=short)


def _multi(short: str, plural: str, entry_type: str) -> Attribute:
    return Attribute(
        short, f'{plural}[type eq "{entry_type}"].value', Kind.STRING, Slot.MULTI, plural,
        entry_type=entry_type, field=short,
    )


def _address(short: str, entry_type: str) -> Attribute:
    return Attribute(
        short, f'addresses[type eq "{entry_type}"]', Kind.ADDRESS, Slot.MULTI, "addresses",
        entry_type=entry_type, field=short,
    )


def _enterprise(short: str, name: str, kind: Kind = Kind.STRING) -> Attribute:
    return Attribute(short, f"{ENTERPRISE_USER}:{name}", kind, Slot.ENTERPRISE, name, field=short)


BUILTIN_ATTRIBUTES: tuple[Attribute, ...] = (
    _top("user_name", "userName", always_idp=True),
    _top("external_id", "externalId", always_idp=True, case_exact=True),
    _top("active", "active", Kind.BOOLEAN, field="is_active", always_idp=True),
    _top("display_name", "displayName"),
    _name("given_name", "givenName"),
    _name("family_name", "familyName"),
    _name("middle_name", "middleName"),
    _name("formatted_name", "formatted"),
    _name("honorific_prefix", "honorificPrefix"),
    _name("honorific_suffix", "honorificSuffix"),
    _top("nick_name", "nickName"),
    _top("profile_url", "profileUrl"),
    _top("title", "title"),
    _top("user_type", "userType"),
    _top("preferred_language", "preferredLanguage"),
    _top("locale", "locale"),
    _top("timezone", "timezone"),
    _multi("email_work", "emails", "work"),
    _multi("email_home", "emails", "home"),
    _multi("email_other", "emails", "other"),
    _multi("phone_work", "phoneNumbers", "work"),
    _multi("phone_mobile", "phoneNumbers", "mobile"),
    _multi("phone_home", "phoneNumbers", "home"),
    _multi("phone_fax", "phoneNumbers", "fax"),
    _multi("phone_other", "phoneNumbers", "other"),
    _address("address_work", "work"),
    _address("address_home", "home"),
    _enterprise("employee_number", "employeeNumber"),
    _enterprise("cost_center", "costCenter"),
    _enterprise("organization", "organization"),
    _enterprise("division", "division"),
    _enterprise("department", "department"),
    _enterprise("manager", "manager", Kind.REFERENCE),
)

BUILTIN_BY_NAME: dict[str, Attribute] = {a.short_name: a for a in BUILTIN_ATTRIBUTES}

# Sub-attributes of an address entry that the catalogue stores (RFC 7643 §4.1.2).
ADDRESS_FIELDS = ("formatted", "streetAddress", "locality", "region", "postalCode", "country")

# Multi-valued attributes whose typed entries the catalogue knows.
MULTI_VALUED = ("emails", "phoneNumbers", "addresses")


def custom_attribute(name: str) -> Attribute:
    """The catalogue entry for an admin-defined attribute `custom:NAME`."""
    return Attribute(f"custom:{name}", f"{CUSTOM_USER}:{name}", Kind.STRING, Slot.CUSTOM, name)


def all_attributes() -> list[Attribute]:
    """Built-in attributes followed by the custom ones defined in the admin, in creation order."""
    from mappings.models import CustomAttribute

    snapshot = _snapshot.get()
    if snapshot:
        return list(snapshot[0])
    names = CustomAttribute.objects.order_by("id").values_list("name", flat=True)
    attributes = _with_customs(names)
    if snapshot is not None:
        snapshot.append(attributes)
    return attributes


def _with_customs(names) -> list[Attribute]:
    return [*BUILTIN_ATTRIBUTES, *(custom_attribute(n) for n in names)]


# Inside catalogue_snapshot(): [] until all_attributes() first runs, then [the attributes].
_snapshot: ContextVar[list[list[Attribute]] | None] = ContextVar("catalogue_snapshot", default=None)


@contextmanager
def catalogue_snapshot() -> Iterator[None]:
    """Within the block, all_attributes() reads the custom attributes once.

    A SCIM write asks for the catalogue in the adapter, the sync engine, the
    response and the request log: one query instead of four. For one request,
    where a custom attribute added meanwhile would not be used anyway.
    """
    token = _snapshot.set([])
    try:
        yield
    finally:
        _snapshot.reset(token)


def prime_catalogue_snapshot(custom_names: list[str]) -> None:
    """Fill the current snapshot with custom attribute names read by another query.

    A SCIM request reads them with its token (scimsync.scim.auth), so the
    catalogue costs it no query of its own. Outside a snapshot, nothing happens.
    """
    snapshot = _snapshot.get()
    if snapshot is not None and not snapshot:
        snapshot.append(_with_customs(custom_names))


def get_attribute(short_name: str) -> Attribute:
    """Look an attribute up by short name; raise KeyError when it is not in the catalogue."""
    if short_name in BUILTIN_BY_NAME:
        return BUILTIN_BY_NAME[short_name]
    if short_name.startswith("custom:"):
        from mappings.models import CustomAttribute

        snapshot = _snapshot.get()
        if snapshot:
            for attribute in snapshot[0]:
                if attribute.short_name == short_name:
                    return attribute
            raise KeyError(short_name)
        name = short_name.removeprefix("custom:")
        if CustomAttribute.objects.filter(name=name).exists():
            return custom_attribute(name)
    raise KeyError(short_name)
