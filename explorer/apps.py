from django.apps import AppConfig


class ExplorerConfig(AppConfig):
    name = "explorer"
    verbose_name = "ASGI consumer explorer"

    def ready(self):
        from explorer import checks, wire  # noqa: F401 - checks registers the system checks

        wire.install()
