"""`make run`'s supervisor: a crashed child is restarted with a log line; a stop signal ends it."""

import signal
import subprocess
import sys
import time


def test_a_crashed_child_is_restarted_with_a_log_line(tmp_path):
    runs = tmp_path / "runs"
    child = (
        "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); n = len(p.read_text()) if p.exists() else 0; "
        "p.write_text('x' * (n + 1)); time.sleep(0 if n == 0 else 60)"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "scripts.supervise", "probe", "--", sys.executable, "-c", child, str(runs)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not (runs.exists() and runs.read_text() == "xx") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runs.read_text() == "xx"  # the first run exited at once, the second is running
    finally:
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=10)
    assert supervisor.returncode == 0
    assert "!! probe exited with code 0" in stderr and "restarting in 1 s" in stderr
    assert runs.read_text() == "xx"  # the stop signal ended it instead of starting a third run


def test_make_run_is_a_demonstration_stack_unless_the_rules_are_set(monkeypatch, capsys):
    """The README's booking-to-payout recipe needs a session that completes at once and no payout hold."""
    from scripts.run import configure

    monkeypatch.setenv("DATABASE_URL", "sqlite:///unused.sqlite3")
    monkeypatch.delenv("SESSION_MIN_RUN_PERCENT", raising=False)
    monkeypatch.setenv("PAYOUT_HOLD_HOURS", "24")

    env, _ = configure()

    assert env["SESSION_MIN_RUN_PERCENT"] == "0"
    assert env["PAYOUT_HOLD_HOURS"] == "24"  # set by the operator: kept
