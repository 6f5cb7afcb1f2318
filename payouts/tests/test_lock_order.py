"""Issue 10, lock order on the payouts side (common.locks: ... → payout → clawback): a clawback being
executed while its payout's transfer fails. The clawback worker used to hold the clawback while it
waited for the payout, and the failing transfer holds the payout while it cancels the payout's
clawbacks: PostgreSQL killed one of them as a deadlock."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.utils import timezone

from payouts import services
from payouts.models import Clawback, Payout
from payouts.services.clawbacks import clawbacks_cancel_for_failed_payout
from payouts.tests.factories import ListenerPayoutFactory


def _deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _sessions_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_clawback_execute_waits_for_the_payout_before_taking_the_clawback():
    # given a refund that landed while the payout's transfer was in flight: a pending clawback on it
    earning = ListenerPayoutFactory()
    payout = Payout.objects.create(
        listener=earning.listener,
        schedule="weekly",
        period_start=timezone.now().date(),
        period_end=timezone.now().date(),
        amount=earning.amount,
        status=Payout.Status.PROCESSING,
        attempts=1,
        transfer_sent_at=timezone.now(),
    )
    earning.payout = payout
    earning.save(update_fields=["payout"])
    clawback = Clawback.objects.create(
        key="refund-1", listener=earning.listener, earning=earning, payout=payout, amount=1000
    )
    before = _deadlocks()
    payout_locked, errors = threading.Event(), []

    def transfer_fails():
        # what payout_transfer_failed does: the payout locked, then its pending clawbacks cancelled
        try:
            with transaction.atomic():
                locked = Payout.objects.select_for_update().get(pk=payout.pk)
                payout_locked.set()
                deadline = time.monotonic() + 10
                while _sessions_waiting_on_a_lock() == 0 and time.monotonic() < deadline:
                    time.sleep(0.02)
                clawbacks_cancel_for_failed_payout(payout=locked)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def clawback_runs():
        payout_locked.wait(10)
        try:
            services.clawback_execute(clawback_id=clawback.pk)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    # when the clawback worker starts while the failing transfer holds the payout
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(transfer_fails), pool.submit(clawback_runs)]:
            future.result()

    # then both finish, no deadlock, and the clawback is cancelled (nothing was sent to take back)
    assert errors == []
    assert _deadlocks() == before
    clawback.refresh_from_db()
    assert clawback.status == Clawback.Status.CANCELLED
