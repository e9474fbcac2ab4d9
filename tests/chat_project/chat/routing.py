from django.urls import re_path

from chat import consumers

websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", consumers.ChatConsumer.as_asgi()),
    re_path(r"ws/achat/(?P<room_name>\w+)/$", consumers.AsyncChatConsumer.as_asgi()),
    re_path(r"ws/report/$", consumers.ReportConsumer.as_asgi()),
]
