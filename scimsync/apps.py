from django.apps import AppConfig


class ScimsyncConfig(AppConfig):
    name = "scimsync"
    verbose_name = "Sync state and journal"
    default_auto_field = "django.db.models.BigAutoField"
