"""Rich renderables for trace entries: a compact line, or a header and a pretty-printed dict.

Everything is built as ``rich.text.Text`` from ``repr`` output or escaped
text, never from markup, so nothing a client sends can style the console or
reach it as an escape sequence.
"""

import asyncio
import concurrent.futures
import re
import sys
from typing import IO, TYPE_CHECKING, Any

import asgiref
from rich.cells import cell_len, set_cell_size
from rich.console import COLOR_SYSTEMS, Console
from rich.highlighter import ReprHighlighter
from rich.padding import Padding
from rich.pretty import Pretty, pretty_repr
from rich.style import Style
from rich.text import Span, Text
from rich.traceback import Traceback

from explorer.trace.display import printable, shown_event, shown_scope
from explorer.trace.entry import clock, duration

if TYPE_CHECKING:  # for an annotation only: the renderer process has no use for management commands
    from django.core.management.base import OutputWrapper


def console(file: IO[str] | None = None, width: int | None = None, **options: Any) -> Console:
    """A console that prints text as it is given: markup, emoji codes and highlighting off, so nothing a
    client sent is ever read as Rich markup. ``options``: Rich's own (``record``, to save a picture)."""
    return Console(
        file=file or sys.stderr, markup=False, emoji=False, highlight=False, width=width, **options
    )


def command_console(stdout: "OutputWrapper", width: int | None = None) -> Console:
    """A console on a management command's stdout: Django's wrapper, told to add no newline of its own
    to what Rich writes (rather than reaching past it for its private stream)."""
    stdout.ending = ""
    return console(stdout, width)


# (arrow, style) per kind: incoming and outgoing look different at a glance.
# Parsed once: a Style object renders faster than a style string.
KINDS = {
    kind: (arrow, Style.parse(style))
    for kind, (arrow, style) in {
        "server": ("◆", "bold magenta"),
        "scope": ("●", "magenta"),
        "in": ("→", "green"),
        "out": ("←", "cyan"),
        "layer": ("⇄", "blue"),
        "query": ("⛁", "blue"),
        "done": ("✓", "dim green"),
        "note": ("ℹ", "yellow"),
        "error": ("✖", "bold red"),
        "exit": ("■", "yellow"),
    }.items()
}
UNKNOWN_KIND = ("?", Style())
# A handler that did not return is not "done": (arrow, label, style) by its outcome.
FAILED = {
    "raised": ("✗", "failed", Style.parse("bold red")),
    "cancelled": ("⊘", "cancelled", Style.parse("yellow")),
}
SUPPRESSED_MODULES = (asgiref, asyncio, concurrent.futures)
DIM, BOLD = Style(dim=True), Style(bold=True)
SLOW = Style.parse("bold yellow reverse")
VIOLATION = Style.parse("bold red")
NOTE = Style.parse("yellow")
INDENT = " " * 10
MAX_NOTE = 400  # a rule's problem can quote what the consumer sent
PLAIN_WIDTH = 120  # full mode's layout width in a file


def styled(parts):
    """One Text from (text, style) parts: a single string with spans, several
    times cheaper than Text.assemble, which matters at one line per event."""
    spans, start = [], 0
    for text, style in parts:
        if style:
            spans.append(Span(start, start + len(text), style))
        start += len(text)
    return Text("".join(text for text, _ in parts), spans=spans)


def shown_type(event):
    """A shown event's type as printed: whatever the consumer put there, so a wrong one shows as it is."""
    return printable(str(event.get("type") if isinstance(event, dict) else None))


def header(entry):
    """Time since open, connection id, arrow and direction, event type, thread, as (text, style) parts."""
    event = entry.event
    event_type = event.get("type") if entry.kind in TYPED and isinstance(event, dict) else None
    if event_type is not None and type(event_type) is not str:
        # A consumer's mistake, shown as it is: 1 and True are one key, NaN never finds its own.
        named = names(entry)
    else:
        key = (entry.connection, entry.kind, entry.outcome, event_type, entry.thread)
        named = names_made.get(key)
        if named is None:
            if len(names_made) >= MAX_NAMES_MADE:
                names_made.clear()
            named = names_made[key] = names(entry)
    style = named[1][1]  # the arrow's, for the note too
    parts = [(f"{clock(entry, entry.config.clock)} ", DIM), *named]
    if entry.wait is not None:
        parts.append((f" wait {duration(entry.wait)}", SLOW if entry.slow else DIM))
    if entry.handler is not None:
        parts.append((f" handler {duration(entry.handler)}", DIM))
    if entry.took is not None:
        parts.append((f" took {duration(entry.took)}", DIM))
    if entry.queries:
        count, seconds = entry.queries
        parts.append((f" {count} quer{'y' if count == 1 else 'ies'} {duration(seconds)}", DIM))
    if entry.note:
        parts.append((f" {printable(entry.note)}", style))
    return parts


TYPED = ("in", "out", "layer", "done")  # the kinds whose line names the event's type
names_made: dict[tuple, list] = {}  # the parts of a line that name it, by what they are made of
MAX_NAMES_MADE = 4096  # then made again: a connection's lines come together, a few thousand at most


def names(entry):
    """The parts of a header that name the line: connection, arrow and kind, event type, thread. Kept in
    ``names_made``: they are the same for each event of a kind on a connection, and were a third of a
    line's work."""
    arrow, style = KINDS.get(entry.kind, UNKNOWN_KIND)
    label = entry.kind
    if entry.outcome in FAILED:
        arrow, label, style = FAILED[entry.outcome]
    parts = [(f"{printable(entry.connection):<6} ", BOLD), (f"{arrow} {label:<6}", style)]
    if entry.kind in TYPED:
        parts.append((f" {shown_type(entry.event):<20}", style + BOLD))
    if entry.thread:
        parts.append((f" [{printable(entry.thread)}]", DIM))
    return parts


def remark_parts(entry):
    """A line per broken rule and per note, under the event they belong to, as (text, style) parts."""
    lines = []
    for violation in entry.violations:
        parts = [
            (f"{INDENT}⚠ {printable(violation.rule)[:MAX_NOTE]}", VIOLATION),
            (f" {printable(violation.problem)[:MAX_NOTE]}", None),
        ]
        if violation.hint:
            parts.append((f" (hint: {printable(violation.hint)[:MAX_NOTE]})", DIM))
        lines.append(parts)
    lines += [[(f"{INDENT}ℹ {printable(note)[:MAX_NOTE]}", NOTE)] for note in entry.notes]
    return lines


def remark_lines(entry, width=None):
    """``remark_parts``, fitted to ``width``, when given."""
    lines = remark_parts(entry)
    if width is not None:
        lines = [line for remark in lines for line in fitted(words(remark), width, NOTE_INDENT)]
    return lines


def remarks(entry, width=None):
    """``remark_lines`` as Text."""
    return [styled(line) for line in remark_lines(entry, width)]


def shown_body(entry):
    """The entry's event or scope as the trace shows it: as recorded, or made short and safe now."""
    if entry.recorded:
        return entry.event
    if entry.kind == "scope":
        return shown_scope(entry.event, entry.config)
    return shown_event(entry.event, entry.config)


def compact_parts(entry):
    """The event's line and its remarks, as lists of (text, style) parts."""
    body = compact_body(entry)
    return [header(entry) + ([(f" {body}", None)] if body else []), *remark_parts(entry)]


def compact_body(entry):
    """The event or scope as a compact line ends with it, or "" for none."""
    if entry.event is None or entry.kind == "done":
        return ""
    body = shown_body(entry)
    if entry.kind in ("in", "out", "layer") and isinstance(body, dict):
        body = {key: value for key, value in body.items() if key != "type"}  # already in the header
    return repr(body) if body else ""


def compact(entry, width=None):
    """One line. The dict is plain: syntax colouring costs more than the rest of the line.

    Given a terminal's ``width``, lines fit it (``fitted``) and a scope is folded (``folded_scope``).
    """
    return [styled(line) for line in compact_lines(entry, width)]


def compact_lines(entry, width=None):
    """``compact``'s lines, as lists of (text, style) parts."""
    if width is None:
        return compact_parts(entry)
    parts = tokens(entry)
    if entry.kind == "scope":
        if isinstance(shown_body(entry), dict):
            parts += folded_scope(shown_body(entry), width - len(INDENT))
        lines = fitted(parts, width)
    else:
        lines = fitted(parts, width)
        body = compact_body(entry)
        if body:
            lines = with_body(lines, body, width)
    return lines + remark_lines(entry, width)


def terminal_text(lines, console):
    """Lines of (text, style) parts as ``console`` would print them, each style its escape codes: the
    same text as printing each line's ``styled`` Text with ``soft_wrap``, made without Rich's layout
    pipeline, which cost a terminal's trace ten times what a file's did. Not for legacy Windows
    consoles, which Rich styles through the Windows API, not escape codes."""
    shown = escaped(console)
    return ["".join(shown(text, style) for text, style in line) for line in lines]


def escaped(console):
    """A function that writes a piece of text in a style as ``console`` would: its colour system's escape
    codes around it (none without one), and no colour where the console has ``no_color``."""
    system = COLOR_SYSTEMS.get(console.color_system) if console.color_system else None
    no_color = console.no_color

    def shown(text, style):
        if not (style and system and text):
            return text
        return (style.without_color if no_color else style).render(text, color_system=system)

    return shown


FULL_MIN_WIDTH = len(INDENT) + 1  # a terminal narrower leaves full mode's event no room: Rich prints it


def full_lines(entry, console, width):
    """``full``'s lines on a terminal ``width`` wide, as text with escape codes. The header and remarks as
    ``terminal_text``; the event laid out, highlighted and given indent guides as ``Pretty`` does,
    wrapped to what the padding leaves, and indented by it (without the spaces Rich pads each line's
    end with). Printing ``full``'s renderables one by one was 550 µs a record."""
    lines = terminal_text(fitted(tokens(entry), width), console)
    if entry.event is not None and entry.kind != "done":
        room = width - len(INDENT)
        layout = Text(pretty_repr(shown_body(entry), max_width=room), style="pretty")
        layout = PRETTY_HIGHLIGHTER(layout)
        if console.encoding.startswith("utf"):  # as Pretty draws them: not on an ASCII-only console
            layout = layout.with_indent_guides(PRETTY_INDENT, style="repr.indent")
        shown = escaped(console)
        for line in layout.wrap(console, room, justify="default", overflow="fold"):
            segments = line.render(console, end="")
            lines.append(INDENT + "".join(shown(text, style) for text, style, _ in segments).rstrip())
    return lines + terminal_text(remark_lines(entry, width), console)


PRETTY_HIGHLIGHTER = ReprHighlighter()  # Pretty's own
PRETTY_INDENT = 4  # Pretty's indent_size


def full(entry, width=None):
    if width is not None:
        renderables = [styled(line) for line in fitted(tokens(entry), width)]
    else:
        renderables = [styled(header(entry))]
    if entry.event is not None and entry.kind != "done":
        renderables.append(Padding(Pretty(shown_body(entry), indent_guides=True), (0, 0, 0, 10)))
    return renderables + remarks(entry, width)


# Narrow terminals: a line is broken only between tokens, and continues under the event.
NOTE_INDENT = INDENT + "  "  # a remark's continuation, under its text
MIN_BODY = 24  # cells a shortened payload needs to say something; fewer, and it starts a line of its own
SCOPE_FIELDS = ("path", "query_string", "subprotocols", "client", "user", "url_route")


def tokens(entry):
    """The header's parts, its note split into words."""
    parts = header(entry)
    return [*parts[:-1], *words(parts[-1:])] if entry.note else parts


def words(parts):
    """Parts split into words, each keeping its style and the spaces before it."""
    return [(word, style) for text, style in parts for word in re.findall(r"\s*\S+", text)]


def fitted(parts, width, indent=INDENT):
    """Lines of (text, style) parts no wider than ``width``, broken only between parts.

    A header's parts are tokens (``wait 5.6ms``, ``[MainThread]``): a terminal
    wrapping at the edge split them (``wait 103`` / ``µs``). A part wider
    than a line on its own is left to the terminal.
    """
    lines, used = [[]], 0
    for text, style in parts:
        size = cell_len(text.rstrip())
        if lines[-1] and used + size > width:
            text = text.lstrip()
            lines.append([(indent, None)])
            used, size = len(indent), cell_len(text.rstrip())
        lines[-1].append((text, style))
        used += cell_len(text)
    for line in lines:  # a padded column at the end of a line is only trailing space
        text, style = line[-1]
        line[-1] = (text.rstrip(), style)
    return lines


def with_body(lines, body, width):
    """The payload after the last line, shortened with … to what is left of it, or on a line of its own."""
    room = width - sum(cell_len(text) for text, _ in lines[-1]) - 1
    if room >= MIN_BODY:
        lines[-1].append((" " + cut(body, room), None))
    else:
        lines.append([(INDENT, None), (cut(body, width - len(INDENT)), None)])
    return lines


def cut(text, cells):
    """``text`` in at most ``cells`` cells, ending with … when shortened."""
    if cell_len(text) <= cells:
        return text
    return set_cell_size(text, max(cells - 1, 0)) + "…"


def folded_scope(scope, room):
    """The scope's fields that tell connections apart as tokens, each cut to ``room`` cells, and the
    names of the rest: the whole is in ``EXPLORER_TRACE=full`` and in the recording."""
    kept = [key for key in SCOPE_FIELDS if scope.get(key) not in (None, b"", "", [], ())]
    parts = [(" " + cut(f"{key}={scope[key]!r}", room - 1), None) for key in kept]
    rest = [printable(str(key)) for key in scope if key not in kept]
    if rest:
        parts += [(f" +{len(rest)} more:", DIM), *words([(" " + ", ".join(rest), DIM)])]
    return parts


def exception(entry, failure):
    """The traceback (a ``tracebacks.Failure``), with the exception's message escaped like everything else.

    Compact mode prints none when the server logs the whole traceback itself
    (the error line says so), and folds the plumbing otherwise (``tracebacks``).
    """
    if entry.config.mode == "full" and failure.trace is not None:
        # Plumbing frames are listed without their source, so the consumer's stand out.
        return [Traceback(failure.trace, extra_lines=1, suppress=SUPPRESSED_MODULES)]
    if entry.server_logs_traceback:
        return []
    return [Text(printable(failure.text, keep_newlines=True), style="red")]


def plain(entry, failure=None):
    """The entry as lines of plain text, for a file or a pipe, where styles would only be stripped.

    Every piece is already printable (``printable`` or ``repr``), so no Text
    is needed to sanitise it; full mode lays the dict out with the same
    ``pretty_repr`` that ``Pretty`` uses, without the styling.
    """
    if entry.config.mode == "full":
        lines = ["".join(text for text, _ in header(entry))]
        if entry.event is not None and entry.kind != "done":
            layout = pretty_repr(shown_body(entry), max_width=PLAIN_WIDTH - len(INDENT))
            lines += [INDENT + line for line in layout.splitlines()]
        lines += ["".join(text for text, _ in parts) for parts in remark_parts(entry)]
    else:
        lines = ["".join(text for text, _ in parts) for parts in compact_parts(entry)]
    if failure and not (entry.server_logs_traceback and entry.config.mode != "full"):
        lines.append(printable(failure.text, keep_newlines=True))
    return lines


def render(entry, failure=None, width=None):
    """The renderables for one trace entry, in the entry's mode; fitted to ``width``, when given."""
    renderables = full(entry, width) if entry.config.mode == "full" else compact(entry, width)
    if failure:
        renderables.extend(exception(entry, failure))
    return renderables


def dropped(count):
    return Text(f"⚠ trace: {count:,} records dropped (queue full)", style="bold yellow")
