"""Reading and writing one catalogue attribute of a user, as a JSON value.

Every layer (SCIM documents, the sync engine, the admin, the REST API) speaks
attribute values in this one shape: a string, a boolean, an address dict, the
manager's SCIM id, or None for "no value". Empty strings and empty dicts are
None: RFC 7643 §2.5 treats unassigned, null and empty as the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

from mappings.catalogue import ADDRESS_FIELDS, Attribute, Kind, Slot
from users.models import User, name_key


class InvalidValue(ValueError):
    """A value that cannot be stored in an attribute; the message names the attribute."""

    def __init__(self, attribute: Attribute, message: str):
        self.attribute = attribute
        super().__init__(f"{attribute.scim_path}: {message}")


def normalize(value: Any) -> Any:
    """The canonical form used to compare two values of an attribute."""
    if value == "" or value == {} or value == []:
        return None
    if isinstance(value, dict):
        cleaned = {k: v for k, v in value.items() if v not in (None, "")}
        return cleaned or None
    return value


def same_value(a: Any, b: Any) -> bool:
    return normalize(a) == normalize(b)


def read_value(user: User, attribute: Attribute) -> Any:
    # A push compares every attribute twice and a document reads each once: the reader
    # chosen per attribute once, not by testing its slot and kind on every read.
    reader = _READERS.get(attribute.short_name)
    if reader is None:
        reader = _READERS[attribute.short_name] = _reader_for(attribute)
    return reader(user)


# By short name, which fixes an attribute's slot, kind and field (a custom attribute's
# "custom:NAME" names its key); bounded by the attributes ever defined.
_READERS: dict[str, Callable[[User], Any]] = {}


def _reader_for(attribute: Attribute) -> Callable[[User], Any]:
    if attribute.slot is Slot.CUSTOM:
        key = attribute.scim_name
        return lambda user: normalize(user.custom_attributes.get(key))
    if attribute.kind is Kind.REFERENCE:
        return _manager_scim_id
    get = attrgetter(_field(attribute))
    if attribute.kind is Kind.BOOLEAN:
        return lambda user: bool(get(user))
    if attribute.kind is Kind.ADDRESS:
        return lambda user: normalize(get(user))
    return lambda user: get(user) or None  # a string column: "" is no value, as normalize says


def _manager_scim_id(user: User) -> str | None:
    manager = user.manager
    return str(manager.scim_id) if manager is not None else None


def write_value(user: User, attribute: Attribute, value: Any) -> None:
    """Set the attribute on the (unsaved) user, validating type and length."""
    value = normalize(value)
    if attribute.slot is Slot.CUSTOM:
        _check_string(attribute, value, max_length=2048)
        customs = dict(user.custom_attributes)
        if value is None:
            customs.pop(attribute.scim_name, None)
        else:
            customs[attribute.scim_name] = value
        user.custom_attributes = customs
    elif attribute.kind is Kind.REFERENCE:
        user.manager = _resolve_manager(user, attribute, value)
    elif attribute.kind is Kind.BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidValue(attribute, "must be a boolean")
        setattr(user, _field(attribute), value)
    elif attribute.kind is Kind.ADDRESS:
        if value is not None and not isinstance(value, dict):
            raise InvalidValue(attribute, "must be an address object")
        if value is not None:
            for key, part in value.items():
                if key not in ADDRESS_FIELDS:
                    raise InvalidValue(attribute, f"unknown address part {key!r}")
                if not isinstance(part, str) or len(part) > 1024:
                    raise InvalidValue(attribute, f"{key} must be a string of at most 1024 characters")
        setattr(user, _field(attribute), value)
    else:
        field = User._meta.get_field(_field(attribute))
        _check_string(attribute, value, max_length=field.max_length)
        if field.name == "user_name" and value is not None:
            _check_name_key(attribute, value)
        setattr(user, field.name, value or "")


def _field(attribute: Attribute) -> str:
    assert attribute.field is not None, attribute
    return attribute.field


def _check_string(attribute: Attribute, value: Any, *, max_length: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidValue(attribute, f"must be a string, not {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise InvalidValue(attribute, f"is {len(value)} characters long; the limit is {max_length}")
    if "\x00" in value:
        raise InvalidValue(attribute, "must not contain NUL characters")


def _check_name_key(attribute: Attribute, value: str) -> None:
    """The userName's uniqueness key (users.models.name_key) must fit its column too:
    case folding lengthens some text ("ß" is "ss"), so 255 characters can become more."""
    limit = User._meta.get_field("user_name_key").max_length
    if len(name_key(value)) > limit:
        raise InvalidValue(attribute, f"is longer than {limit} characters once case-folded, as userNames are "
                                      "compared (RFC 7643 §4.1.1)")


def _resolve_manager(user: User, attribute: Attribute, value: Any) -> User | None:
    """The manager is another user of the same connection, named by SCIM id."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue(attribute, "must be the SCIM id of a user")
    if user.pk is not None and value == str(user.scim_id):
        raise InvalidValue(attribute, "a user cannot be their own manager")
    manager = (
        User.objects.filter(connection_id=user.connection_id, scim_id=_as_uuid(attribute, value))
        .only("id", "scim_id")
        .first()
    )
    if manager is None:
        raise InvalidValue(attribute, f"no user with id {value!r} in this connection")
    return manager


def _as_uuid(attribute: Attribute, value: str):
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidValue(attribute, f"{value!r} is not a user id") from None
