"""The create request's bounded wait for the worker's Stripe subscription: woken by the worker's commit
(LISTEN/NOTIFY, common.ready), not by polling the subscription row."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from booking.tests.factories import PackageFactory
from common.ready import ready_notify
from subscriptions import services
from subscriptions.models import Subscription, SubscriptionPlan
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _creating() -> Subscription:
    plan = SubscriptionPlan.objects.create(package=PackageFactory(price=Decimal("30.00")), interval="week")
    at = timezone.now() + timedelta(days=1)
    return Subscription.objects.create(
        talker=TalkerFactory(), listener=ListenerFactory(), plan=plan, first_session_at=at, slot_anchor_at=at
    )


def _worker_creates_it_later(sub: Subscription, *, after: float, commit: bool = True) -> threading.Thread:
    """What the worker does, from another thread (its own connection): store Stripe's answer, notify."""

    def work():
        time.sleep(after)
        try:
            with transaction.atomic():
                Subscription.objects.filter(pk=sub.pk).update(
                    status=Subscription.Status.INCOMPLETE, stripe_subscription_id=f"sub_ready{sub.pk}"
                )
                ready_notify(services._ready_channel(sub.pk))
                if not commit:
                    raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _subscription_reads(queries) -> int:
    return sum(1 for q in queries.captured_queries if 'FROM "subscriptions_subscription"' in q["sql"])


def test_the_wait_ends_when_the_worker_commits_with_two_reads():
    sub = _creating()
    worker = _worker_creates_it_later(sub, after=0.6)

    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        waited = services.subscription_wait_created(subscription_id=sub.pk, timeout=5)
    elapsed = time.monotonic() - started
    worker.join()

    assert (waited.status, waited.stripe_subscription_id) == (Subscription.Status.INCOMPLETE, f"sub_ready{sub.pk}")
    assert 0.6 <= elapsed < 3, elapsed  # woken by the commit, long before the 5 s deadline
    assert _subscription_reads(queries) == 2  # once after LISTEN, once after the wake-up: no polling


def test_a_rolled_back_worker_does_not_end_the_wait_which_times_out_still_creating():
    sub = _creating()
    worker = _worker_creates_it_later(sub, after=0.1, commit=False)

    started = time.monotonic()
    waited = services.subscription_wait_created(subscription_id=sub.pk, timeout=1.0)
    worker.join()

    assert waited.status == Subscription.Status.CREATING  # the view answers 202 and a poll URL
    assert time.monotonic() - started >= 1.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_listening_channels()")
        assert cursor.fetchone()[0] == 0
