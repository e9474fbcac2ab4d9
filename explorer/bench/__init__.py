"""``python manage.py bench``: what each layer of the stack costs, sync and async consumers under load.

``app`` is the ASGI application the bench serves (the subjects, side by side
in one daphne process); ``scenarios`` drives them from a websockets client
and measures; the command prints the tables and writes ``--json``.
"""
