"""`make reset`: start over with an empty database and an empty Stripe emulator, together.

Wipes what `make run` keeps between runs: the database (the SQLite file is deleted; PostgreSQL is
flushed with `manage.py flush`), the emulator's state file, the embedded Redis's append-only file
(its queued tasks name rows that no longer exist), and the metric files. Keeps the generated
secrets (webhook signing secret, Flower password). Refuses while `make run` is going.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import environ

from scripts.run import EMULATOR_STATE, PID_FILE, ROOT, RUN_ENV
from scripts.services import RUN_DIR


def running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def main() -> int:
    pid = running_pid()
    if pid:
        print(f"`make run` is running (pid {pid}); stop it first (Ctrl-C), then `make reset`.", file=sys.stderr)
        return 1
    # The database make run used: the environment, then .run/env, then .env (as the settings read them).
    for path in (RUN_ENV, ROOT / ".env"):
        if path.exists():
            environ.Env.read_env(path, overwrite=False)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{RUN_DIR / 'talkpay.sqlite3'}"
    if database_url.startswith("sqlite:"):
        database = environ.Env.db_url_config(database_url)["NAME"]
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(database + suffix):
                os.remove(database + suffix)
        print(f"• database: removed {database}")
    else:
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "flush", "--noinput"],
            cwd=ROOT,
            env={**os.environ, "TALKPAY_IGNORE_RUN_ENV": "true", "DATABASE_URL": database_url},
            check=True,
        )
        print("• database: flushed (every table emptied)")
    EMULATOR_STATE.unlink(missing_ok=True)
    print(f"• stripe emulator: removed {EMULATOR_STATE}")
    shutil.rmtree(RUN_DIR / "redis", ignore_errors=True)
    shutil.rmtree(RUN_DIR / "prometheus", ignore_errors=True)
    RUN_ENV.unlink(missing_ok=True)
    print("• embedded redis: queued tasks dropped; `make run` seeds everything again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
