"""``explorer/daphne_fixes.py``: made on the daphne it was written for, and only there."""

import logging

import daphne
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory

from explorer import daphne_fixes


def test_another_daphne_is_left_as_it_is_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(daphne, "__version__", "4.3.0")
    monkeypatch.setattr(WebSocketFactory, "explorer_checked", False)
    run, kill, init = Server.run, Server.kill_all_applications, WebSocketFactory.__init__
    with caplog.at_level(logging.WARNING, logger="explorer.daphne_fixes"):
        daphne_fixes.install()
        daphne_fixes.install()
    assert (Server.run, Server.kill_all_applications, WebSocketFactory.__init__) == (run, kill, init)
    [warning] = [r for r in caplog.records if r.name == "explorer.daphne_fixes"]
    assert "daphne 4.3.0 is not the 4.2" in warning.getMessage()


def test_daphne_4_2_is_fixed():
    assert daphne.__version__.startswith(f"{daphne_fixes.WRITTEN_FOR}.")
    assert Server.kill_all_applications is daphne_fixes.kill_all_applications
