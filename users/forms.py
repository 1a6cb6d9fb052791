"""Form fields of the user admin page."""

from __future__ import annotations

from django import forms

from mappings.catalogue import ADDRESS_FIELDS

_LABELS = {"formatted": "formatted", "streetAddress": "street", "locality": "city", "region": "region",
           "postalCode": "postal code", "country": "country"}


class AddressWidget(forms.MultiWidget):
    """One text input per sub-attribute of a SCIM address (RFC 7643 §4.1.2), labelled by placeholder."""

    def __init__(self, attrs=None):
        super().__init__([forms.TextInput(attrs={"placeholder": _LABELS[name], "aria-label": _LABELS[name]})
                          for name in ADDRESS_FIELDS], attrs)

    def decompress(self, value):
        value = value if isinstance(value, dict) else {}
        return [value.get(name) or "" for name in ADDRESS_FIELDS]


class AddressField(forms.MultiValueField):
    """A SCIM address as the JSON object the User model stores; all parts empty is no address.

    The model's JSONField would show a raw JSON textarea ("null" when empty) and refuse
    a plain street typed into it.
    """

    widget = AddressWidget

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__([forms.CharField(required=False, max_length=2048) for _ in ADDRESS_FIELDS],
                         require_all_fields=False, **kwargs)

    def compress(self, data_list):
        address = {name: part.strip() for name, part in zip(ADDRESS_FIELDS, data_list or []) if part and part.strip()}
        return address or None

    def has_changed(self, initial, data):
        if self.disabled:
            return False
        try:
            return (initial or None) != self.clean(data)  # JSON null and {} both mean no address
        except forms.ValidationError:
            return True
