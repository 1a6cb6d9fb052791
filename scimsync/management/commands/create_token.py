"""Create a bearer token for an existing connection; print only the token (for scripts).

    python manage.py create_token CONNECTION_NAME [--label L]
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from mappings.models import Connection
from mappings.services import token_create


class Command(BaseCommand):
    help = "Create a SCIM bearer token for a connection and print it on stdout."

    def add_arguments(self, parser):
        parser.add_argument("connection_name", help="Name of an existing connection.")
        parser.add_argument("--label", default="create_token", help="Label of the token (default: create_token).")

    def handle(self, *args, connection_name: str, label: str, **options):
        connection = Connection.objects.filter(name=connection_name).first()
        if connection is None:
            raise CommandError(f"no connection named {connection_name!r}")
        _token, plaintext = token_create(connection=connection, label=label)
        self.stdout.write(plaintext)
