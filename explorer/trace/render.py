"""Rich renderables for trace entries: a compact line, or a header and a pretty-printed dict.

Everything is built as ``rich.text.Text`` from ``repr`` output or escaped
text, never from markup, so nothing a client sends can style the console or
reach it as an escape sequence.
"""

import traceback

from rich.highlighter import ReprHighlighter
from rich.padding import Padding
from rich.pretty import Pretty
from rich.text import Text
from rich.traceback import Traceback

from explorer.trace.display import printable, shown_event, shown_scope

# (arrow, style) per kind: incoming and outgoing look different at a glance.
KINDS = {
    "scope": ("●", "magenta"),
    "in": ("→", "green"),
    "out": ("←", "cyan"),
    "error": ("✖", "bold red"),
    "exit": ("■", "yellow"),
}
highlight = ReprHighlighter()


def header(entry):
    """Time since open, connection id, arrow and direction, event type, thread."""
    arrow, style = KINDS.get(entry.kind, ("?", "white"))
    event_type = entry.event.get("type") if isinstance(entry.event, dict) else None
    line = Text.assemble(
        (f"{entry.seconds:8.3f}s ", "dim"),
        (f"{entry.connection:<6} ", "bold"),
        (f"{arrow} {entry.kind:<5} ", style),
    )
    if entry.kind in ("in", "out"):
        line.append(f"{printable(str(event_type)):<20}", style=f"bold {style}")
    if entry.thread:
        line.append(f" [{printable(entry.thread)}]", style="dim")
    if entry.note:
        line.append(f" {printable(entry.note)}", style=style)
    return line


def shown(entry):
    if entry.kind == "scope":
        return shown_scope(entry.event, entry.config)
    return shown_event(entry.event, entry.config)


def compact(entry):
    line = header(entry)
    if entry.event is not None:
        body = shown(entry)
        if entry.kind in ("in", "out") and isinstance(body, dict):
            body.pop("type", None)  # already in the header
        if body:
            line.append(" ")
            line.append_text(highlight(Text(repr(body))))
    return [line]


def full(entry):
    renderables = [header(entry)]
    if entry.event is not None:
        renderables.append(Padding(Pretty(shown(entry), indent_guides=True), (0, 0, 0, 10)))
    return renderables


def exception(exc_info, mode):
    """The traceback, with the exception's message escaped like everything else."""
    exc_type, error, tb = exc_info
    if mode == "full":
        trace = Traceback.extract(exc_type, error, tb)
        for stack in trace.stacks:
            stack.exc_type = printable(stack.exc_type)
            stack.exc_value = printable(stack.exc_value)
        return [Traceback(trace)]
    text = "".join(traceback.format_exception(exc_type, error, tb)).rstrip("\n")
    return [Text(printable(text, keep_newlines=True), style="red")]


def render(entry, exc_info=None):
    """The renderables for one trace entry, in the entry's mode."""
    renderables = full(entry) if entry.config.mode == "full" else compact(entry)
    if exc_info:
        renderables.extend(exception(exc_info, entry.config.mode))
    return renderables


def dropped(count):
    return Text(f"⚠ trace: {count:,} records dropped (queue full)", style="bold yellow")
