"""`cancel-service bulk --wait` following a bulk published by a stand-in for the bulk function
(continuations with running totals, then the report), with the temporary rule and queue gone
however the command ends; on a terminal, progress is one line redrawn."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

import cancel_service_cli as cli
from cancel_service.event_models import BulkProgress, BulkReport
from cancel_service_cli import progress
from cancel_service_cli.progress import ProgressDisplay
from cancel_service_cli.report import report_lines
from cancel_service_cli.watch import ReportWatch
from support.constants import BUS_NAME, PROJECT
from support.operator_bus import (
    BulkFunctionStandIn,
    Bus,
    report_detail,
)


@pytest.mark.parametrize(("outcome", "code"), [("finished", 0), ("capped", 0), ("failed", 1)])
def test_wait_shows_progress_prints_the_report_and_exits_by_its_outcome(
    bus: Bus, capsys: pytest.CaptureFixture[str], outcome: str, code: int
) -> None:
    with BulkFunctionStandIn(bus, outcome=outcome) as bulk_function:
        result = cli.main(["bulk", "--projects", PROJECT, "--wait", "--timeout", "20s", "--bus", BUS_NAME])

    assert result == code
    assert bulk_function.request is not None
    bulk_id = bulk_function.request["detail"]["bulkId"]
    output = capsys.readouterr()
    assert "progress: 1/2 cancelled, 0 already finished, 0 failed, 1 invocation\n" in output.err
    assert "progress: 2/3 cancelled, 0 already finished, 0 failed, 2 invocations\n" in output.err
    lines = output.out.splitlines()
    assert lines[0] == f"bulk {bulk_id} requested on bus {BUS_NAME} (projects {PROJECT}); waiting"
    assert lines[1] == f"bulk {bulk_id} {outcome} in 4.5 s"
    assert f"  selection         projects {PROJECT}" in lines
    assert "  cancelled         2" in lines
    assert "  already finished  1" in lines
    assert "  invocations       2" in lines
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_the_temporary_rule_takes_only_this_bulks_events_into_a_queue_only_it_may_fill(bus: Bus) -> None:
    with BulkFunctionStandIn(bus) as bulk_function:
        code = cli.main(["bulk", "--projects", PROJECT, "--bulk-id", "b3", "--wait", "--bus", BUS_NAME])

    assert code == 0  # the report of this very request was taken

    pattern = json.loads(bulk_function.watch_rule["EventPattern"])
    assert pattern["detail"] == {"bulkId": ["b3"]}
    assert "app.messages.bulk" in pattern["source"]
    assert "detail-type" not in pattern
    (statement,) = bulk_function.watch_policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": bulk_function.watch_rule["Arn"]}}


def test_wait_with_json_prints_the_report_detail_alone_on_stdout(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    with BulkFunctionStandIn(bus) as bulk_function:
        code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--json", "--bus", BUS_NAME])

    assert code == 0
    output = capsys.readouterr()
    assert json.loads(output.out) == bulk_function.report
    assert "  cancelled         2" in output.err


def test_wait_exits_3_when_no_report_comes_in_time_and_cleans_up(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    code = cli.main(
        ["bulk", "--projects", PROJECT, "--bulk-id", "b4", "--wait", "--timeout", "4s", "--bus", BUS_NAME]
    )

    assert code == 3
    assert time.monotonic() - started < 10
    assert "no report of bulk b4 within 4 s" in capsys.readouterr().err
    assert [event["detail"]["bulkId"] for event in bus.requests()] == ["b4"]
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_ctrl_c_while_waiting_cleans_up_and_exits_130(
    bus: Bus, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C raises KeyboardInterrupt in the main thread between two bytecodes. It is pressed here
    # between two receives of the wait: raised from another thread (`_thread.interrupt_main`), it
    # could land inside moto's in-process request handling and leave one of moto's locks held,
    # which hangs the command's clean-up; against AWS that code runs in AWS, not in the command.
    stand_in = BulkFunctionStandIn(bus, interrupt=True)
    tick = ProgressDisplay.tick

    def tick_or_ctrl_c(display: ProgressDisplay) -> None:
        if stand_in.ctrl_c.is_set():
            raise KeyboardInterrupt
        tick(display)

    monkeypatch.setattr(ProgressDisplay, "tick", tick_or_ctrl_c)
    with stand_in:
        code = cli.main(["bulk", "--projects", PROJECT, "--bulk-id", "b5", "--wait", "--bus", BUS_NAME])

    assert code == 130
    assert "bulk b5 goes on in the service" in capsys.readouterr().err
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


@pytest.mark.parametrize(
    "other",
    [
        {"dryRun": True, "selector": {"ownerId": "user_2someoneelse"}},
        {"selector": {"projectIds": ["another-project"], "projectCount": 1}},
        {"dryRun": True},
        {"startedAt": "2026-11-24T12:00:00.000Z", "finishedAt": "2026-11-24T12:00:04.500Z"},
    ],
    ids=["another-owners-dry-run", "another-selection", "a-dry-run", "started-before-the-send"],
)
def test_wait_takes_only_the_report_of_the_request_it_sent(
    bus: Bus, capsys: pytest.CaptureFixture[str], other: dict
) -> None:
    with BulkFunctionStandIn(bus, outcome="failed", others_reports=[other]):
        code = cli.main(
            [
                "bulk",
                "--projects",
                PROJECT,
                "--bulk-id",
                "reused",
                "--wait",
                "--timeout",
                "20s",
                "--bus",
                BUS_NAME,
            ]
        )

    assert code == 1  # its own report (failed), not the other bulk's
    output = capsys.readouterr()
    assert "a report of another bulk with id reused ignored" in output.err
    assert "bulk reused failed in 4.5 s" in output.out


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_while_waiting_clean_up_like_ctrl_c(
    bus: Bus, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, signal_name: str
) -> None:
    stand_in = BulkFunctionStandIn(bus, interrupt=True)
    tick = ProgressDisplay.tick

    def tick_or_signal(display: ProgressDisplay) -> None:
        if stand_in.ctrl_c.is_set():
            # Delivered to this process between two receives (as a terminal or a supervisor would).
            os.kill(os.getpid(), getattr(signal, signal_name))
        tick(display)

    monkeypatch.setattr(ProgressDisplay, "tick", tick_or_signal)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with stand_in:
            code = cli.main(["bulk", "--projects", PROJECT, "--bulk-id", "b6", "--wait", "--bus", BUS_NAME])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    assert code == 130
    assert "bulk b6 goes on in the service" in capsys.readouterr().err
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_a_failure_while_setting_up_the_wait_leaves_nothing_behind(
    bus: Bus, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the check of the bus's rules, so that the failure comes while the watch is set up.
    monkeypatch.setattr(cli, "check_bulk_rule", lambda _events, _bus: None)
    code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--bus", "no-such-bus"])

    assert code == 1
    assert "AWS error" in capsys.readouterr().err
    assert bus.watch_queues() == []
    assert bus.requests() == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    with Terminal() as stream:
        yield stream


def test_on_a_terminal_progress_is_one_line_redrawn_with_a_bar(terminal: Terminal) -> None:
    display = ProgressDisplay(terminal)
    display.tick()
    display.update(BulkProgress(selected=12, cancelled=6, alreadyFinished=1, failed=0, invocations=3))
    display.close()

    output = terminal.getvalue()
    assert output.startswith("\r| waiting for the first progress")
    assert "\n" not in output[:-1]
    last = output.rsplit("\r", 1)[1]
    assert last.startswith(
        "/ [" + "#" * 12 + "-" * 12 + "] 6/12 cancelled, 1 already finished, 0 failed, 3 invocations"
    )
    assert output.endswith("\n")


def test_progress_never_goes_back_to_an_earlier_total(terminal: Terminal) -> None:
    display = ProgressDisplay(terminal)
    later = BulkProgress(selected=10, cancelled=8, invocations=3)
    display.update(later)
    display.update(BulkProgress(selected=5, cancelled=4, invocations=2))

    assert display.latest == later
    assert "4/5" not in terminal.getvalue()


@pytest.mark.usefixtures("bus")
def test_the_timeout_counts_from_the_start_not_from_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    """Setting up the watch (a rule that must first deliver a probe) is inside --timeout too."""
    started = time.monotonic()
    code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--timeout", "2s", "--bus", BUS_NAME])

    assert code == 3
    assert time.monotonic() - started < 2 + 1.5  # the clean-up's few calls after the deadline
    assert "within" in capsys.readouterr().err


def test_a_rule_not_delivering_within_the_timeout_exits_3_sending_nothing(
    bus: Bus, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ReportWatch, "receive", lambda _watch, _wait: [])

    code = cli.main(["bulk", "--projects", PROJECT, "--wait", "--timeout", "2s", "--bus", BUS_NAME])

    assert code == 3
    assert "did not deliver within --timeout 2 s; no bulk was requested" in capsys.readouterr().err
    assert bus.requests() == []
    assert bus.watch_rules() == []
    assert bus.watch_queues() == []


def test_off_a_terminal_a_line_says_the_command_still_waits_when_nothing_else_was_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(progress, "QUIET_LINE_EVERY_SECONDS", 0)
    stream = io.StringIO()
    display = ProgressDisplay(stream)

    display.tick()
    display.update(BulkProgress(selected=5, cancelled=4, invocations=1))
    display.update(BulkProgress(selected=5, cancelled=4, invocations=1))  # unchanged: no line
    display.tick()

    assert stream.getvalue().splitlines() == [
        "waiting (0s): no totals yet",
        "progress: 4/5 cancelled, 0 already finished, 0 failed, 1 invocation",
        "waiting (0s): 4/5 cancelled, 0 already finished, 0 failed, 1 invocation",
    ]


def _report(outcome: str, dry_run: bool, selected: int, cancelled: int) -> BulkReport:
    return BulkReport.model_validate(
        report_detail("b9", outcome, dryRun=dry_run, selected=selected, cancelled=cancelled)
    )


@pytest.mark.parametrize(
    ("report", "cap_line"),
    [
        (
            _report("capped", True, 250, 0),
            "120: a run would cancel 120 of the 250 selected, leaving 130",
        ),
        (_report("finished", True, 90, 0), "120: not reached (a run would cancel up to 90)"),
        (
            _report("capped", False, 120, 120),
            "120: reached; the rest of the selection is still processing (a dry run with this cap counts it)",
        ),
        (_report("finished", False, 90, 90), "120: not reached"),
    ],
    ids=["dry-run-past-the-cap", "dry-run-within", "run-capped", "run-within"],
)
def test_a_report_of_a_capped_request_shows_the_cap_and_what_it_leaves(
    report: BulkReport, cap_line: str
) -> None:
    lines = list(report_lines(report, 120))

    assert f"  {'cap':<17} {cap_line}" in lines
    assert not [line for line in report_lines(report, None) if line.startswith("  cap ")]
