"""The ASGI consumer explorer: a Django project that shows the ASGI WebSocket protocol as it happens."""
