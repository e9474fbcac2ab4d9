"""HTTP routes. The WebSocket routes are in the top-level ``routing`` package."""

from django.urls import path

from explorer import views

urlpatterns = [
    path("", views.index, name="index"),
]
