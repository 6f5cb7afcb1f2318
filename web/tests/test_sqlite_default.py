"""`make run` with no DATABASE_URL runs on SQLite: the statements kept compiled (common.prepared) and the
webhook intake, which bypass parts of the ORM, must work there too. The suite runs on PostgreSQL, so
these run again, in a process of their own, on a SQLite file (a webhook intake that answered 500 on
SQLite went unnoticed once)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ("billing/tests/test_prepared_statements.py", "billing/tests/test_webhooks_intake.py")


def test_the_prepared_statements_and_the_webhook_intake_pass_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "TALKPAY_TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'talkpay.sqlite3'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # metrics in the process, as in the suite
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *FILES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
