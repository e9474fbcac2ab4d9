from django.apps import AppConfig


class ExplorerConfig(AppConfig):
    name = "explorer"
    verbose_name = "ASGI consumer explorer"

    def ready(self):
        from explorer import wire

        wire.install()
