"""`make run`'s supervisor: a crashed child is restarted with a log line; a stop signal ends it. And the
stacks it and `make load` start: the processes, and one load test per database."""

import signal
import subprocess
import sys
import time

import pytest


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


def test_make_run_starts_workers_consuming_every_queue_with_stripe_writes_apart(tmp_path, monkeypatch):
    import re

    from scripts import run
    from workers.celery import QUEUES

    monkeypatch.setattr(run, "RUN_DIR", tmp_path)
    env = {"FLOWER_PORT": "5555", "FLOWER_BASIC_AUTH": "operator:x", "WORKER_METRICS_PORT": "9808"}
    commands = run.processes(env, {})

    consumed = {
        name: re.search(r" -Q (\S+)", command).group(1).split(",")
        for name, (command, _) in commands.items()
        if " worker " in command
    }
    assert sorted(queue for queues in consumed.values() for queue in queues) == sorted(QUEUES)
    assert consumed["worker-stripe"] == ["stripe"]


def test_a_second_load_test_on_the_same_database_is_refused_while_the_first_runs():
    from scripts import load
    from scripts.services import reachable

    if not reachable("127.0.0.1", 5432) or not load.POSTGRES.startswith("postgres://postgres@127.0.0.1:5432"):
        pytest.skip("the load test's PostgreSQL (LOAD_POSTGRES) is not reachable here")
    name = f"talkpay_load_guard_test_{time.monotonic_ns()}"
    first = load._run_alone(name)
    try:
        with pytest.raises(SystemExit, match="another load test is using the database"):
            load._run_alone(name)
        load._run_alone(f"{name}_other").close()  # another database is another run's own
    finally:
        first.close()
    load._run_alone(name).close()  # free again once the first ended
