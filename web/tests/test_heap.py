"""common.heap: the web's and the workers' startup objects are frozen out of full collections."""

import gc
import importlib.util
from pathlib import Path

from common.heap import heap_freeze_startup_objects


def test_startup_objects_are_frozen_and_a_full_collection_no_longer_walks_them():
    try:
        frozen = heap_freeze_startup_objects()
        assert frozen > 10_000  # Django, DRF and the apps are loaded here
        # A frozen object still dies when its last reference goes (another thread may drop one
        # meanwhile), so the count can only have shrunk a little since.
        assert frozen - 100 <= gc.get_freeze_count() <= frozen
        assert len(gc.get_objects()) < frozen  # what the collector still walks: only what came after
    finally:
        gc.unfreeze()


def test_gunicorn_workers_and_celery_processes_freeze_once_set_up(monkeypatch, tmp_path):
    # gunicorn.conf.py sets this for its web processes when unset; this process keeps its own.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location(
        "gunicorn_conf", Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
    )
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    from celery import signals

    from workers import celery as worker_app

    try:
        conf.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
    for signal in (signals.worker_process_init, signals.worker_ready):
        assert worker_app._heap_freeze in signal._live_receivers(None)
