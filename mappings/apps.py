from django.apps import AppConfig


class MappingsConfig(AppConfig):
    name = "mappings"
    verbose_name = "Connections and mappings"

    def ready(self) -> None:
        from mappings import checks  # noqa: F401  (registers the catalogue's system checks)
