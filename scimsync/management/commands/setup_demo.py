"""Prepare the `make run` demo: the "demo" connection, a fresh token, the admin account.

Prints exactly three lines on stdout:

    SCIM base URL: http://HOST:PORT/scim/v2
    SCIM token: <token>
    Admin login: admin / <password>

Tokens are stored hashed, so the previous run's plaintext cannot be shown
again: every run revokes the previous "make run" token of the demo connection
and creates a new one. The admin password is generated once into
var/admin_password and stays the same across runs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from mappings.models import Connection, ScimToken
from mappings.services import connection_create, token_create, token_revoke
from users.models import User, name_key

DEMO_CONNECTION = "demo"
DEMO_TOKEN_LABEL = "make run"
ADMIN_USER_NAME = "admin"


def _read_or_create_password(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Command(BaseCommand):
    help = "Create the demo connection and admin account if missing, and print a fresh demo token."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=os.environ.get("HOST") or "127.0.0.1",
            help="Host shown in the SCIM base URL (default: $HOST or 127.0.0.1).",
        )
        parser.add_argument(
            "--port", default=os.environ.get("PORT") or "8000",
            help="Port shown in the SCIM base URL (default: $PORT or 8000).",
        )

    def handle(self, *args, host: str, port: str, **options):
        password = _read_or_create_password(Path(settings.VAR_DIR) / "admin_password")
        with transaction.atomic():
            plaintext = self._demo_token()
            self._admin(password)
        self.stdout.write(f"SCIM base URL: http://{_url_host(host)}:{port}/scim/v2")
        self.stdout.write(f"SCIM token: {plaintext}")
        self.stdout.write(f"Admin login: {ADMIN_USER_NAME} / {password}")

    def _demo_token(self) -> str:
        connection = Connection.objects.select_for_update().filter(name=DEMO_CONNECTION).first()
        if connection is None:
            connection = connection_create(name=DEMO_CONNECTION, preset=Connection.Preset.GENERIC)
        for old in ScimToken.objects.usable().filter(connection=connection, label=DEMO_TOKEN_LABEL):
            token_revoke(token=old)
        _token, plaintext = token_create(connection=connection, label=DEMO_TOKEN_LABEL)
        return plaintext

    def _admin(self, password: str) -> None:
        admin = User.objects.filter(
            connection__isnull=True, user_name_key=name_key(ADMIN_USER_NAME)
        ).first()
        if admin is None:
            User.objects.create_superuser(ADMIN_USER_NAME, password)
            return
        changed = []
        if not admin.check_password(password):
            # The printed login must work: var/admin_password is the source of truth.
            admin.set_password(password)
            changed.append("password")
            self.stderr.write("setup_demo: reset the admin password to the one in var/admin_password")
        for flag in ("is_active", "is_staff", "is_superuser"):
            if not getattr(admin, flag):
                setattr(admin, flag, True)
                changed.append(flag)
        if changed:
            admin.save()
