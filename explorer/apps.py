from django.apps import AppConfig


class ExplorerConfig(AppConfig):
    name = "explorer"
    verbose_name = "ASGI consumer explorer"

    def ready(self):
        from explorer import daphne_fixes, database

        daphne_fixes.install()
        database.install()
