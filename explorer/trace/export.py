"""A recorded trace as one HTML file: the page's trace panel and timeline, with the records inside.

``manage.py trace FILE --html OUT.html`` writes it, so that a bug report can
carry a trace instead of a screenshot. The file stands alone: the panel's
script and styles (the page's own, ``explorer/static/explorer``) are inlined,
the records are a JSON block the script reads, and its Content-Security-Policy
lets it load nothing at all, so it opens the same offline and anywhere.

The records are the recording's, validated as they were read, and already
shown as the trace shows them (credentials redacted, payloads shortened).
The page puts them on screen through ``textContent`` only, and the JSON block
is escaped so that nothing in a record can end the script element.
"""

import datetime
import html
import json
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "static" / "explorer"
STYLES = ("page.css", "trace.css")
SCRIPT = "trace.js"
# Nothing from anywhere: only the inlined styles and script, and the data: favicon.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ASGI trace: {title}</title>
<link rel="icon" href="data:,">
<style>
{styles}
</style>
</head>
<body>
<header class="top">
  <h1>ASGI trace: {title}</h1>
  <p>{summary}</p>
</header>
<section class="trace" aria-label="server trace">
  <header class="trace-head">
    <h2>Server trace</h2>
    <span class="badge" data-role="trace-state" data-state="recorded">recorded</span>
  </header>
  <p class="hint">The records of a recording, as the explorer's page shows them live: filter them,
    click one for its whole dict. The timeline has a lane per thread and per connection; handlers are
    solid bars, waits hatched ones, each long wait linked to the handler that held the thread.</p>
  <div class="trace-view" data-role="trace"></div>
</section>
<script type="application/json" id="trace-records">{records}</script>
<script>
{script}
</script>
</body>
</html>
"""


class MissingPageError(RuntimeError):
    """The page's files are not here: the trace was installed without them (pip installs only Python)."""


def asset(name, *unsafe):
    if not (STATIC / name).is_file():
        raise MissingPageError(
            f"the page's {name} is not in {STATIC}: write --html from a clone of the explorer"
        )
    text = (STATIC / name).read_text(encoding="utf-8")
    for part in unsafe:
        if part in text.lower():  # it would end its own element early, or hide the rest of it
            raise ValueError(f"{name} contains {part!r} and cannot be inlined")
    return text


def embedded(records):
    """The records as JSON that cannot end the script element it sits in, nor open a comment."""
    text = json.dumps(records, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(records, title, summary):
    """The whole file, as text. ``records``: validated records and drop counts, in order."""
    numbered = [{**record, "seq": number} for number, record in enumerate(records, 1)]
    return PAGE.format(
        policy=POLICY,
        title=html.escape(title),
        summary=html.escape(summary),
        styles="\n".join(asset(name, "</style") for name in STYLES),
        records=embedded(numbered),
        script=asset(SCRIPT, "</script", "<!--"),
    )


def summary(records, sources):
    connections = {r["connection"] for r in records if r.get("connection")}
    written = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{len(records):,} records of {len(connections):,} connections, from {', '.join(sources)}; "
        f"written {written} by manage.py trace --html. Opens offline: it loads nothing."
    )


def write(path, records, sources):
    """Write the page for ``records`` (from the recordings named in ``sources``) to ``path``."""
    text = page(records, ", ".join(Path(source).name for source in sources), summary(records, sources))
    Path(path).write_text(text, encoding="utf-8")
    return len(text)
