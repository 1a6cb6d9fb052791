"""Create a SCIM connection and its first token; print only the token (for scripts).

    python manage.py create_connection NAME --preset {generic,entra,okta} [--cadence-minutes N]
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from mappings.models import Connection
from mappings.services import connection_create, token_create


def _positive_int(raw: str) -> int:
    import argparse

    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = "Create a SCIM connection with a bearer token and print the token on stdout."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Connection name (must not exist yet).")
        parser.add_argument(
            "--preset", choices=Connection.Preset.values, default=Connection.Preset.GENERIC,
            help="Vendor preset for the default attribute mappings (default: generic).",
        )
        parser.add_argument(
            "--cadence-minutes", type=_positive_int, default=None,
            help="Declared IdP sync cadence in minutes (default: SCIMSYNC_DEFAULT_CADENCE_MINUTES).",
        )
        parser.add_argument(
            "--label", default="create_connection", help="Label of the token (default: create_connection).",
        )

    def handle(self, *args, name: str, preset: str, cadence_minutes: int | None, label: str, **options):
        if Connection.objects.filter(name=name).exists():
            raise CommandError(f"a connection named {name!r} already exists")
        cadence = timedelta(minutes=cadence_minutes) if cadence_minutes is not None else None
        try:
            with transaction.atomic():
                connection = connection_create(name=name, preset=preset, sync_cadence=cadence)
                _token, plaintext = token_create(connection=connection, label=label)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        except IntegrityError as exc:
            raise CommandError(f"could not create connection {name!r}: {exc}") from exc
        self.stdout.write(plaintext)
