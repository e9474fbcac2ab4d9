"""``manage.py bench --quick``: every scenario runs and the report has its shape (never a speed)."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from explorer.bench.app import SUBJECTS
from explorer.management.commands.bench import QUICK, TARGETS


def test_a_quick_run_reports_every_subject_and_scenario(tmp_path):
    out = StringIO()
    call_command("bench", "--quick", "--json", str(tmp_path / "bench.json"), stdout=out)
    runs = json.loads((tmp_path / "bench.json").read_text())
    text = out.getvalue()
    for title in ("Echo:", "Concurrency:", "Cross-stall:", "Scale:", "Targets"):
        assert title in text
    [report] = runs["servers"].values()
    assert report["label"].startswith("daphne 4.2")

    echo = {row["subject"]: row for row in report["echo"]}
    assert set(echo) == set(SUBJECTS)
    for row in echo.values():
        assert row["messages"] == QUICK["connections"] * QUICK["trips"] * QUICK["rounds"]
        assert row["rate"] > 0 and row["cpu_us_per_message"] is not None
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert echo["raw"]["vs_raw"] == 1
    assert echo["bare-ac"]["vs_bare"] == echo["bare-sc"]["vs_bare"] == 1
    assert echo["explorer-sc-off"]["vs_trace_off"] == 1
    assert echo["explorer-ac-full"]["vs_trace_off"] == pytest.approx(
        echo["explorer-ac-full"]["rate"] / echo["explorer-ac-off"]["rate"]
    )

    sleepers = {row["subject"]: row for row in report["concurrency"]["sleepers"]}
    assert set(sleepers) == {"explorer-ac-off", "explorer-sc-off"}
    assert all(row["all_answered_s"] >= row["sleep"] for row in sleepers.values())  # a sleep lasts that long
    assert set(report["concurrency"]["cross_stall"]["echo_s"]) == {"explorer-ac-off", "bare-ac", "raw"}

    scale = report["scale"]
    assert scale["connections"] == scale["answered"] == QUICK["scale"]
    assert scale["open"]["open_files"] >= scale["before"]["open_files"] + QUICK["scale"]  # one socket each

    assert [target["target"] for target in report["targets"]] == [name for name, *_ in TARGETS]
    assert all(isinstance(target["met"], bool) for target in report["targets"])
    assert runs["machine"]["cpus"] and "daphne" in runs["machine"]["versions"]
    assert isinstance(report["dropped_trace_records"], int)


@pytest.mark.parametrize(("option", "value"), [("--scale", "9000"), ("--connections", "0")])
def test_sizes_out_of_bounds_are_refused(option, value):
    with pytest.raises(CommandError):
        call_command("bench", option, value, stdout=StringIO())
