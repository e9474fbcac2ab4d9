"""``python manage.py bench``: what each layer of the stack costs, sync and async consumers under load.

``app`` is the ASGI application the bench serves (the subjects, side by side
in one daphne process); ``scenarios`` drives them from a websockets client
and measures; the command prints the tables and writes ``--json``.
"""

TRACE_MODES = ("off", "compact", "full")
# The compact trace's capture with its lines let go as they are made: nothing queued, shipped or
# rendered. What it keeps of trace off is the most any queue and renderer could keep.
CAPTURE = "capture"
EXPLORER_MODES = ("off", CAPTURE, "compact", "full")  # the explorer subjects', in the tables' order
# The subjects ``app`` serves, by name: what the bench's client needs of them, without building the
# application (which would start a trace renderer in the client's process too).
SUBJECT_NAMES = (
    "raw",
    "bare-ac",
    "bare-sc",
    *(f"explorer-{kind}-{mode}" for kind in ("ac", "sc") for mode in EXPLORER_MODES),
)
