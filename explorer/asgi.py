"""ASGI entry point: HTTP goes to Django (the page and its static files), WebSockets to the consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
# Set up Django before importing anything that touches models (AuthMiddlewareStack).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.exceptions import SuspiciousFileOperation  # noqa: E402
from django.http import Http404  # noqa: E402

import routing  # noqa: E402
from explorer.origin import AllowedOriginValidator  # noqa: E402
from explorer.trace import TraceMiddleware  # noqa: E402


class StaticFiles(ASGIStaticFilesHandler):
    """Django's static files under any ASGI server, a path that climbs out of them a 404.

    Django's own answers ``/static/../x`` with a 500 and logs a traceback:
    ``safe_join`` raises SuspiciousFileOperation, which only Http404 is caught for.
    """

    def serve(self, request):
        try:
            return super().serve(request)
        except SuspiciousFileOperation:
            raise Http404("no such static file") from None


application = ProtocolTypeRouter(
    {
        # The page's CSS and JavaScript, from the app's static folder, under
        # daphne as under runserver: a local tool needs no collectstatic.
        "http": StaticFiles(django_asgi_app),
        # Outermost, so the trace sees the handshake's whole way in.
        "websocket": TraceMiddleware(
            AllowedOriginValidator(
                AuthMiddlewareStack(URLRouter([*routing.websocket_urlpatterns, routing.UNROUTED]))
            )
        ),
    }
)
