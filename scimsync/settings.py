"""scimsync settings, read from the environment.

Defaults are for a zero-setup development run (SQLite, embedded broker);
production sets DATABASE_URL, REDIS_URL, SECRET_KEY and DEBUG=false.
A bad value stops the process at start with a message naming the variable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from scimsync.env import ConfigError, env_bool, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SCIMSYNC_VAR_DIR", str(BASE_DIR / "var")))

# DEBUG defaults to off: a forgotten variable must not expose debug pages.
DEBUG = env_bool("DEBUG", False)

_INSECURE_DEV_KEY = "insecure-development-key-do-not-use-in-production"
# `make run` generates a random key into VAR_DIR/secret_key; reading it here lets
# `manage.py` commands on the same checkout (create_api_key...) start without one.
_GENERATED_KEY = VAR_DIR / "secret_key"
SECRET_KEY = env_str("SECRET_KEY") or (
    _GENERATED_KEY.read_text().strip() if _GENERATED_KEY.is_file() else ""
) or (_INSECURE_DEV_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ConfigError(
        f"SECRET_KEY is not set; it is required when DEBUG is off (or run `make run` once, "
        f"which generates one into {_GENERATED_KEY})"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind a TLS-terminating proxy, trust X-Forwarded-Proto so meta.location says https.
if env_bool("SCIMSYNC_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_scim",
    "users",
    "mappings",
    "scimsync",
]

# Sessions, CSRF, the logged-in user and messages are Django's own, skipped under /scim/
# (scimsync/middleware.py): an IdP's bearer-token request uses none of them.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "scimsync.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "scimsync.middleware.CsrfViewMiddleware",
    "scimsync.middleware.AuthenticationMiddleware",
    "scimsync.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "scimsync.request_log.ScimRequestLogMiddleware",
]

# Messages are kept server-side: a new token or API key is shown once in one, and the
# default cookie storage would put the secret, signed but readable, into a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "scimsync.urls"
WSGI_APPLICATION = "scimsync.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env_url(
    "DATABASE_URL", schemes={"postgres", "postgresql", "pgsql", "sqlite"}
)
if _database_url:
    DATABASES = {
        "default": dj_database_url.parse(
            _database_url, conn_max_age=env_int("SCIMSYNC_DB_CONN_MAX_AGE", 60, minimum=0)
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
        "SCIMSYNC_DB_PREPARED_STATEMENTS", True
    ):
        # Server-side parameters, and psycopg prepares a statement once a connection has
        # run it 5 times: every SCIM request runs the same few, and PostgreSQL spent longer
        # planning them than running them. Turn off behind a transaction-mode pooler
        # (PgBouncer before 1.21), which cannot keep prepared statements per client.
        DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "scimsync.sqlite3",
            # SQLite serialises writers. IMMEDIATE takes the write lock when a transaction
            # starts, so a transaction that read first never finds the lock taken when it
            # writes ("database is locked" at once, whatever the timeout); the timeout is
            # how long it waits for that lock. WAL lets readers go on while one writes.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            # A file, not memory, so a Celery worker started by the tests sees the test data;
            # one per test process, so two test runs on one checkout do not collide.
            "TEST": {"NAME": VAR_DIR / f"test-{os.getpid()}.sqlite3"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "users.User"
# Only local accounts (no connection) sign in with a password; provisioned users use SSO.
AUTHENTICATION_BACKENDS = ["users.auth.LocalAccountBackend"]
# userName is unique per connection (and among local accounts), not globally;
# LocalAccountBackend signs in local accounts only, so the lookup is unambiguous.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
LOGIN_URL = "admin:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# One way to show a time across the admin (scimsync/formats/en/formats.py).
FORMAT_MODULE_PATH = ["scimsync.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Celery: Redis when configured, otherwise kombu's filesystem transport, which
# needs no server, so `make run` works on a machine with only python3.
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", schemes={"redis", "rediss", "filesystem"}) or env_url(
    "REDIS_URL", schemes={"redis", "rediss"}
)
if CELERY_BROKER_URL is None:
    _queue_dir = VAR_DIR / "broker"
    # kombu's filesystem transport does not create its folders.
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        # Without it kombu writes ./control in whatever folder a process starts in.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
else:
    # kombu waits forever on a Redis that stops answering without closing the
    # connection (a frozen host, a failover); a publish then hangs an admin's click.
    # socket_timeout stays above the consumer's 1 s BRPOP.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
# Deployments (or test runs) sharing one Redis keep apart by queue name; workers,
# beat and web processes of one deployment must agree on it.
CELERY_TASK_DEFAULT_QUEUE = env_str("SCIMSYNC_CELERY_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("SCIMSYNC_TASK_TIME_LIMIT", 3600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30 if CELERY_TASK_TIME_LIMIT > 60 else None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing must not hang a request when the broker is down: the run row is
# already saved, and the sweep re-queues it later.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY = False

SCIMSYNC = {
    # Users synced per batch in a deferred sync: one transaction per batch.
    "SYNC_BATCH_SIZE": env_int("SCIMSYNC_SYNC_BATCH_SIZE", 500, minimum=1),
    # A running sync whose worker renewed no heartbeat (after each batch) for this
    # long is taken to be abandoned (worker killed) and is resumed by the sweep.
    "SYNC_LEASE_SECONDS": env_int("SCIMSYNC_SYNC_LEASE_SECONDS", 600, minimum=5),
    # Default declared cadence of a new connection (Entra's cycle is 40 minutes).
    "DEFAULT_CADENCE": timedelta(minutes=env_int("SCIMSYNC_DEFAULT_CADENCE_MINUTES", 40, minimum=1)),
    # The most resources a list page returns; advertised in ServiceProviderConfig.
    "MAX_PAGE_SIZE": env_int("SCIMSYNC_MAX_PAGE_SIZE", 200, minimum=1),
    "MAX_BODY_BYTES": env_int("SCIMSYNC_MAX_BODY_BYTES", 1_048_576, minimum=1024),
    # Safeguard: a deferred sync that would overwrite local values of more than this
    # share of a connection's users (and at least APPROVAL_MIN_USERS users) waits for
    # an admin's approval instead of running.
    "APPROVAL_SHARE": env_float("SCIMSYNC_APPROVAL_SHARE", 0.2, minimum=0.0, maximum=1.0),
    "APPROVAL_MIN_USERS": env_int("SCIMSYNC_APPROVAL_MIN_USERS", 10, minimum=1),
    # A mapping change moves the flags of a connection of up to this many users inside
    # the request (about 2.5 s per 100,000 users on PostgreSQL); of a larger one, in a
    # flag-recompute sync run on a worker.
    "INLINE_RECOMPUTE_MAX_USERS": env_int("SCIMSYNC_INLINE_RECOMPUTE_MAX_USERS", 100_000, minimum=0),
    # Days the decoded SCIM request log is kept (the journal is kept for ever).
    "REQUEST_LOG_DAYS": env_int("SCIMSYNC_REQUEST_LOG_DAYS", 30, minimum=1),
}

# Celery beat (`celery -A scimsync beat`, or `worker -B` under `make run`): per-connection
# schedules are checked every minute, queued runs whose message was lost are re-sent,
# and the request log is pruned hourly.
CELERY_BEAT_SCHEDULE = {
    "start-due-scheduled-syncs": {"task": "scimsync.tasks.start_due_scheduled_syncs", "schedule": 60.0},
    "requeue-stale-sync-runs": {"task": "scimsync.tasks.requeue_stale_sync_runs", "schedule": 60.0},
    "prune-request-log": {"task": "scimsync.tasks.prune_request_log", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

SCIM_SERVICE_PROVIDER = {
    "NETLOC": env_str("SCIMSYNC_NETLOC", "localhost"),
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A per-connection bearer token created in the scimsync admin.",
            "primary": True,
        }
    ],
    "USER_ADAPTER": "scimsync.scim.adapters.SCIMUserAdapter",
    "GROUP_MODEL": "users.models.Group",
    "GROUP_ADAPTER": "scimsync.scim.adapters.SCIMGroupAdapter",
    "SERVICE_PROVIDER_CONFIG_MODEL": "scimsync.scim.discovery.ServiceProviderConfig",
    "BASE_LOCATION_GETTER": "scimsync.scim.urls_util.base_location",
    "SCHEMAS_GETTER": "scimsync.scim.discovery.static_schemas",
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="scimsync"',
}

# The management API (/api/, scimsync/api/): API keys for automation, the admin
# session (with CSRF) for the browser; the admin's model permissions for both.
REST_FRAMEWORK = {
    # The key first, so a request with no credentials gets 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "scimsync.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "scimsync.api.permissions.ApiKeyScope",
        "scimsync.api.permissions.AdminPermissions",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "scimsync.api.conventions.PagePagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "scimsync.api.conventions.StableOrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "scimsync.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "scimsync.api.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "scimsync management API",
    "DESCRIPTION": (
        "What the admin pages do, for scripts: connections and their SCIM tokens, the attribute "
        "catalogue, mappings with an impact preview, users with each attribute's owner and at-risk "
        "state, local edits and reverts, the at-risk report, the journal and lost edits, sync runs. "
        "Authenticate with `Authorization: Api-Key <key>` (manage.py create_api_key) or the admin "
        "session; the admin's model permissions apply. SCIM tokens do not work here."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its pages hold no data; anyone may read them.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # scimsync.api.urls.IdConverter: a row id in a path.
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}},
    "ENUM_NAME_OVERRIDES": {
        "MappingStateEnum": "mappings.models.AttributeMapping.State",
        "SyncRunStateEnum": "scimsync.models.SyncRun.State",
    },
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
