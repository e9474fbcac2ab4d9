"""The HTTP side: a short pointer to the two WebSocket endpoints."""

from django.http import HttpResponse

INDEX = """\
ASGI consumer explorer

  ws://{host}/ws/sc/   a raw channels.consumer.SyncConsumer
  ws://{host}/ws/ac/   a raw channels.consumer.AsyncConsumer

Connect with:  python -m websockets ws://{host}/ws/ac/
Then type text (echoed), /help, or /close 4000 bye. The trace is on the server's console.
"""


def index(request):
    return HttpResponse(INDEX.format(host=request.get_host()), content_type="text/plain; charset=utf-8")
