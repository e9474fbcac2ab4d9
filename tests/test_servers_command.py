"""``manage.py servers``: the matrix, from real servers, on two of them."""

import json
import subprocess
import sys

from explorer import matrix
from tests.conftest import ROOT


def test_the_matrix_of_two_servers_is_what_their_wire_showed(tmp_path):
    out = tmp_path / "servers.json"
    table = tmp_path / "servers.md"
    ran = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "servers",
            "--server",
            "uvicorn",
            "--server",
            "hypercorn",
            "--json",
            str(out),
            "--markdown",
            str(table),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results = json.loads(out.read_text())
    assert set(results["servers"]) == {"uvicorn", "hypercorn"}
    assert results["machine"]["versions"]["uvicorn"]
    for server in results["servers"].values():
        assert set(server["observations"]) == set(matrix.ROWS)
        assert not [o for o in server["observations"].values() if o["wire"].startswith("probe failed")]
    uvicorn, hypercorn = (results["servers"][name]["observations"] for name in ("uvicorn", "hypercorn"))
    assert uvicorn["spec_version"]["wire"] == "2.4" and hypercorn["spec_version"]["wire"] == "2.3"
    assert uvicorn["close_reason"]["wire"] == hypercorn["close_reason"]["wire"] == "close 4000 'bye'"
    assert uvicorn["accept_headers"]["wire"] == "sent"
    assert uvicorn["denial"]["wire"].startswith("HTTP 401 'denied with 401")
    assert uvicorn["empty_text"]["wire"] == "delivered"
    assert uvicorn["exception_after_accept"]["wire"].startswith("no close frame (1006)")
    assert hypercorn["exception_after_accept"]["wire"].startswith("close 1011")
    assert uvicorn["clients_close"]["app"] == "told {'code': 4001, 'reason': 'later'}"
    assert hypercorn["clients_close"]["app"] == "told {'code': 1006}"  # hypercorn #127
    assert hypercorn["return_without_accept"]["wire"] == "HTTP 500"
    # The table on the console and in Markdown: a column per server, a row per behaviour.
    assert "uvicorn 0.54" in ran.stdout and "hypercorn 0.18" in ran.stdout
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| behaviour | the app asked | uvicorn 0.54")
    assert len(lines) == 2 + len(matrix.ROWS)


def test_a_probe_reads_the_recording_a_server_is_still_writing(tmp_path):
    """The server appends to its recording as a probe reads it: a last line caught half written is
    left for the next look, not a probe that fails on it."""
    recording = tmp_path / "trace.jsonl"
    whole = {"connection": "ac#1", "kind": "scope", "event": {"type": "websocket"}}
    recording.write_text(json.dumps(whole) + "\n" + '{"connection": "ac#1", "kind": "in", "ev')
    assert matrix.Probe(server=None, recording=recording).records() == [whole]
