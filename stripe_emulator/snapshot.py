"""The emulator's state on disk, so a restart of `make run` keeps the demo talker's customer and the
listener's Connect account (`python -m stripe_emulator --state-file .run/emulator-state.pickle`).

What is saved: every object, index, balance, idempotency record and webhook endpoint, and the emulated
clock's offset (pending funds are found again from their balance transactions). What is not:
work still scheduled in memory (webhook retries, payouts and disputes due later) and the faults
armed. The endpoint pre-registered from the command line is replaced by the one given this time,
so a changed web port or secret takes effect. The file is written atomically (temporary file, then
rename), every few seconds while the state changes and once at shutdown; it is a local cache of a
local emulator, so pickle is fine: never point --state-file at a file someone else can write.
"""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

FORMAT = 1
STATE_ATTRIBUTES = (
    "objects",
    "internal",
    "owner",
    "seqno",
    "order",
    "idx",
    "balances",
    "idem",
    "webhook_secrets",
    "endpoints",
    "counter",
    "payout_fail_next",
    "payout_fail_accounts",
    "platform_account",
    "clock_offset",
)
# Attributes a snapshot from an older emulator lacks: they keep their fresh value.
OPTIONAL_ATTRIBUTES = {"clock_offset"}
PREREGISTERED = "pre-registered from the command line"


def snapshot_save(emu, path: str | os.PathLike) -> None:
    path = Path(path)
    with emu.lock:
        data = pickle.dumps(
            {"format": FORMAT, "state": {name: getattr(emu, name) for name in STATE_ATTRIBUTES}},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def snapshot_load(emu, path: str | os.PathLike) -> bool:
    """Replace the emulator's state with the file's; False (state untouched) when there is no file."""
    path = Path(path)
    if not path.exists():
        return False
    saved = pickle.loads(path.read_bytes())
    if saved.get("format") != FORMAT:
        raise ValueError(f"{path}: snapshot format {saved.get('format')!r}, expected {FORMAT}")
    with emu.lock:
        for name in STATE_ATTRIBUTES:
            if name in OPTIONAL_ATTRIBUTES and name not in saved["state"]:
                continue
            setattr(emu, name, saved["state"][name])
        emu._pending_funds_rebuild()
        for endpoint_id in list(emu.endpoints):
            endpoint = emu.objects.get(endpoint_id) or {}
            if endpoint.get("description") == PREREGISTERED:
                emu.endpoints.remove(endpoint_id)
                emu.objects.pop(endpoint_id, None)
                emu.webhook_secrets.pop(endpoint_id, None)
        for url, secret, connect in emu.preregistered:
            emu._create_endpoint(url, ["*"], secret=secret, description=PREREGISTERED, connect=connect)
        # captures still settling when the state was saved (that scheduled work is not kept)
        for charge in [o for o in emu.objects.values() if o.get("object") == "charge" and o.get("captured")]:
            emu._settle_capture_now(charge)
    return True


class SnapshotWriter:
    """Saves the state every `interval` seconds when it changed (the object counter moved, or an
    idempotency record was added), and once more on `stop()`."""

    def __init__(self, emu, path: str | os.PathLike, interval: float = 2.0):
        self.emu, self.path, self.interval = emu, Path(path), interval
        self._stop = threading.Event()
        self._saved_mark = None
        self._thread = threading.Thread(target=self._run, name="emulator-snapshot", daemon=True)

    def _mark(self):
        return (self.emu.counter, len(self.emu.idem), id(self.emu.objects), self.emu.clock_offset)

    def start(self) -> SnapshotWriter:
        self._saved_mark = self._mark()
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.save_if_changed()

    def save_if_changed(self) -> None:
        mark = self._mark()
        if mark != self._saved_mark:
            snapshot_save(self.emu, self.path)
            self._saved_mark = mark

    def stop(self) -> None:
        self._stop.set()
        snapshot_save(self.emu, self.path)
