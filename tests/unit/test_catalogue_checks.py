"""The system check that keeps the attribute catalogue, the User model and /Schemas in step
(docs/add-an-attribute.md): it passes as shipped and names what a half-added attribute misses."""

from __future__ import annotations

from mappings import catalogue
from mappings.catalogue import Attribute, Kind, Slot
from mappings.checks import catalogue_matches_model_and_schemas


def test_the_shipped_catalogue_passes():
    assert catalogue_matches_model_and_schemas() == []


def test_an_attribute_added_to_the_catalogue_only_is_reported(monkeypatch):
    half_added = Attribute("badge", "badgeNumber", Kind.STRING, Slot.TOP, "badgeNumber", field="badge")
    monkeypatch.setattr(catalogue, "BUILTIN_ATTRIBUTES", (*catalogue.BUILTIN_ATTRIBUTES, half_added))
    ids = sorted(e.id for e in catalogue_matches_model_and_schemas())
    assert ids == ["scimsync.E001", "scimsync.E002", "scimsync.E003"]
