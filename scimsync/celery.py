"""The Celery app. Workers run deferred syncs; see scimsync/tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scimsync.settings")

app = Celery("scimsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["scimsync"])
