"""Create an API key for a local account; print only the key (for scripts).

    python manage.py create_api_key USER_NAME [--scope read-only|read-write] [--label L]

The key acts as USER_NAME (a local account) with that account's admin permissions;
the scope can only narrow them. Only its digest is stored: keep the printed key.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from scimsync.api.models import ApiKey
from scimsync.api.services import api_key_create
from users.models import User, name_key


class Command(BaseCommand):
    help = "Create a management API key acting as a local account, and print it once on stdout."

    def add_arguments(self, parser):
        parser.add_argument("user_name", help="The local account (admin) the key acts as.")
        parser.add_argument("--scope", type=lambda v: v.replace("-", "_"), choices=ApiKey.Scope.values,
                            default=ApiKey.Scope.READ_ONLY,
                            help="read-only (default) or read-write; the owner's permissions apply either way.")
        parser.add_argument("--label", default="create_api_key", help="Label shown in the admin.")

    def handle(self, *args, user_name: str, scope: str, label: str, **options):
        owner = User.objects.filter(connection__isnull=True, user_name_key=name_key(user_name)).first()
        if owner is None:
            raise CommandError(f"no local account named {user_name!r}")
        try:
            _key, plaintext = api_key_create(owner=owner, scope=scope, label=label)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(plaintext)
