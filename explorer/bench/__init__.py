"""``python manage.py bench``: what each layer of the stack costs, sync and async consumers under load.

``app`` is the ASGI application the bench serves (the subjects, side by side
in one daphne process); ``scenarios`` drives them from a websockets client
and measures; the command prints the tables and writes ``--json``.
"""

TRACE_MODES = ("off", "compact", "full")
# The subjects ``app`` serves, by name: what the bench's client needs of them, without building the
# application (which would start a trace renderer in the client's process too).
SUBJECT_NAMES = (
    "raw",
    "bare-ac",
    "bare-sc",
    *(f"explorer-{kind}-{mode}" for kind in ("ac", "sc") for mode in TRACE_MODES),
)
