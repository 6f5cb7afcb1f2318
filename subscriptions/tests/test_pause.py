"""Pause and resume through the API, with Stripe's pause (status `paused`: no invoices, the period stands
still) and resume on the same billing anchor (the period under way is not billed). The current period's
paid session stays; the slot's reservations ahead are released while paused and taken again on resume; the
next paid renewal is booked on the same weekday and time, exact to the cent. After each: ledger_check
clean (it compares our invoices with Stripe's)."""

from datetime import timedelta

import pytest

from billing.models import Payment, Refund, WebhookEvent
from billing.stripe_gateway import as_dict, client
from billing.webhooks.processing import webhook_event_replay
from booking.models import Booking
from booking.tests.factories import BookingFactory
from subscriptions.models import Subscription, SubscriptionInvoice
from subscriptions.tests.conftest import PAID, WEEK, ledger_clean, settle, subscribed_and_paid
from web.testing import auth_client
from web.tests.factories import ListenerFactory

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DAY = 86400


def _bookings(sub, status):
    return list(Booking.objects.filter(subscription_session__subscription=sub, status=status).order_by("scheduled_at"))


def _stripe(sub) -> dict:
    return as_dict(client().v1.subscriptions.retrieve(sub.stripe_subscription_id))


def _stripe_invoices(sub) -> list[dict]:
    return [as_dict(i) for i in client().v1.invoices.list(params={"subscription": sub.stripe_subscription_id}).data]


def _state():
    return (
        sorted(Booking.objects.values_list("id", "status", "total_amount", "scheduled_at")),
        Payment.objects.count(),
        sorted(SubscriptionInvoice.objects.values_list("stripe_invoice_id", "status", "amount_paid", "booking_id")),
        list(Subscription.objects.values_list("id", "status")),
    )


def test_pause_keeps_the_paid_session_bills_nothing_and_resume_books_the_next_period_on_the_slot(
    wired, talker_on_clock, plan, listener
):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan("week", "30.00"), wired)
    first = _bookings(sub, "confirmed")[0]
    assert len(_bookings(sub, "reserved")) == 4

    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/pause/")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    settle(wired)
    stripe_sub = _stripe(sub)
    assert stripe_sub["status"] == "paused"
    assert stripe_sub["status_details"]["paused"]["subscription"]["type"] == "pause_requested"
    assert [b.pk for b in _bookings(sub, "confirmed")] == [first.pk]  # the paid session stays
    assert _bookings(sub, "reserved") == []  # the listener's time ahead is free
    # pausing again answers it as it is
    assert talker.api.post(f"/api/payment/subscriptions/{sub.pk}/pause/").json()["status"] == "paused"

    talker.advance(2 * WEEK + DAY, wired)  # two weeks paused: nothing billed
    assert [i["billing_reason"] for i in _stripe_invoices(sub)] == ["subscription_create"]
    assert SubscriptionInvoice.objects.filter(subscription=sub).count() == 1

    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/resume/")
    assert response.status_code == 200 and response.json()["status"] == "active"
    settle(wired)
    assert _stripe(sub)["status"] == "active"
    # the period under way (the third) is not billed; the fourth is the next, and is held again
    reserved = _bookings(sub, "reserved")
    assert reserved[0].scheduled_at == first.scheduled_at + timedelta(weeks=3)
    assert len(reserved) == 4

    talker.advance(3 * WEEK + PAID, wired)  # the fourth period renews
    confirmed = _bookings(sub, "confirmed")
    assert [b.scheduled_at for b in confirmed] == [first.scheduled_at, first.scheduled_at + timedelta(weeks=3)]
    renewal = confirmed[1]
    assert (renewal.total_amount, renewal.app_fee, renewal.listener_amount) == (3000, 300, 2700)
    assert renewal.earning.amount == 2700
    stripe_paid = sorted(i["amount_paid"] for i in _stripe_invoices(sub))
    assert stripe_paid == sorted(
        SubscriptionInvoice.objects.filter(subscription=sub).values_list("amount_paid", flat=True)
    )
    assert stripe_paid == [3000, 3000]
    ledger_clean()

    # every subscription and invoice event again, newest first: nothing changes
    before = _state()
    for event in WebhookEvent.objects.filter(type__regex=r"^(invoice|customer\.subscription)").order_by("-id"):
        webhook_event_replay(stripe_event_id=event.stripe_event_id)
    assert _state() == before
    assert WebhookEvent.objects.filter(type="customer.subscription.paused").exists()
    assert WebhookEvent.objects.filter(type="customer.subscription.resumed").exists()
    ledger_clean()


def test_resume_is_refused_when_the_slot_was_booked_meanwhile_then_resumes_on_another_slot(
    wired, talker_on_clock, plan, listener
):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    first = _bookings(sub, "confirmed")[0]
    assert talker.api.post(f"/api/payment/subscriptions/{sub.pk}/pause/").status_code == 200
    talker.advance(WEEK + DAY, wired)
    # someone else books the listener at the slot's next session (the third: the second period is under way)
    BookingFactory(listener=listener, scheduled_at=first.scheduled_at + timedelta(weeks=2), status="pending")

    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/resume/")
    assert response.status_code == 409, response.json()
    assert response.json()["error"]["code"] == "slot_taken"
    assert list(response.json()["error"]["fields"]) == ["next_session_at"]
    settle(wired)
    assert _stripe(sub)["status"] == "paused"
    sub.refresh_from_db()
    assert sub.status == "paused"
    assert _bookings(sub, "reserved") == []
    # a slot outside the first period billed again is refused too, and Stripe stays paused
    late = first.scheduled_at + timedelta(weeks=3, hours=1)
    response = talker.api.post(
        f"/api/payment/subscriptions/{sub.pk}/resume/", {"next_session_at": late.isoformat()}, format="json"
    )
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["next_session_at"]
    settle(wired)
    assert _stripe(sub)["status"] == "paused"
    # two hours later on the same day is free: resumed on that slot
    moved = first.scheduled_at + timedelta(weeks=2, hours=2)
    response = talker.api.post(
        f"/api/payment/subscriptions/{sub.pk}/resume/", {"next_session_at": moved.isoformat()}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "active", response.json()
    settle(wired)
    assert [b.scheduled_at for b in _bookings(sub, "reserved")][:2] == [moved, moved + timedelta(weeks=1)]
    talker.advance(2 * WEEK + PAID, wired)
    confirmed = _bookings(sub, "confirmed")
    assert [b.scheduled_at for b in confirmed] == [first.scheduled_at, moved]
    assert (confirmed[1].total_amount, confirmed[1].app_fee, confirmed[1].listener_amount) == (3000, 300, 2700)
    ledger_clean()


def test_cancelling_a_paused_subscription_ends_it_now_and_keeps_the_paid_session(
    wired, talker_on_clock, plan, listener
):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    talker.api.post(f"/api/payment/subscriptions/{sub.pk}/pause/")
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/cancel/", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    settle(wired)
    assert _stripe(sub)["status"] == "canceled"
    assert len(_bookings(sub, "confirmed")) == 1 and _bookings(sub, "reserved") == []
    assert Refund.objects.count() == 0
    ledger_clean()


def test_a_pause_made_on_stripe_is_followed_and_resumed_through_the_api(wired, talker_on_clock, plan, listener):
    """An operator pauses in the Dashboard: the event is a trigger, the subscription read from Stripe."""
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    client().v1.subscriptions.pause(
        sub.stripe_subscription_id, params={"bill_for": {"unused_time_from": {"type": "none"}}}
    )
    settle(wired)
    sub.refresh_from_db()
    assert sub.status == "paused" and _bookings(sub, "reserved") == []
    assert talker.api.post(f"/api/payment/subscriptions/{sub.pk}/resume/").json()["status"] == "active"
    talker.advance(WEEK + PAID, wired)
    assert len(_bookings(sub, "confirmed")) == 2
    ledger_clean()


def test_pause_collection_set_on_stripe_reads_as_paused_and_resume_clears_it(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    client().v1.subscriptions.update(sub.stripe_subscription_id, params={"pause_collection": {"behavior": "void"}})
    settle(wired)
    sub.refresh_from_db()
    assert sub.status == "paused" and _bookings(sub, "reserved") == []
    talker.advance(WEEK + PAID, wired)
    voided = SubscriptionInvoice.objects.get(subscription=sub, billing_reason="subscription_cycle")
    assert voided.status == "void" and voided.booking_id is None
    assert talker.api.post(f"/api/payment/subscriptions/{sub.pk}/resume/").json()["status"] == "active"
    assert _stripe(sub)["pause_collection"] is None
    assert len(_bookings(sub, "reserved")) == 4
    talker.advance(2 * WEEK + PAID, wired)
    assert len(_bookings(sub, "confirmed")) == 2
    ledger_clean()


def test_an_incomplete_subscription_cannot_pause_and_stripe_failing_is_a_json_5xx_not_a_crash(
    wired, talker_on_clock, plan, listener
):
    from subscriptions.tests.conftest import subscribe

    talker = talker_on_clock()
    incomplete = subscribe(talker, listener, plan()).json()["subscription"]["id"]
    response = talker.api.post(f"/api/payment/subscriptions/{incomplete}/pause/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    assert list(response.json()["error"]["fields"]) == ["status"]

    sub = subscribed_and_paid(talker_on_clock(), ListenerFactory(password=None), plan(), wired)
    owner = auth_client(sub.talker)
    wired.fault("500", count=10, path_prefix="/v1/subscriptions")  # Stripe down for a while
    response = owner.post(f"/api/payment/subscriptions/{sub.pk}/pause/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "stripe_unavailable"
    wired.clear_faults()
    sub.refresh_from_db()
    assert sub.status == "active" and len(_bookings(sub, "reserved")) == 4  # nothing half-done
    # Stripe refuses what we ask (here: an id it does not know)
    Subscription.objects.filter(pk=sub.pk).update(stripe_subscription_id="sub_unknown")
    response = owner.post(f"/api/payment/subscriptions/{sub.pk}/pause/")
    assert response.status_code == 502 and response.json()["error"]["code"] == "stripe_refused"
    Subscription.objects.filter(pk=sub.pk).update(stripe_subscription_id=sub.stripe_subscription_id)
    assert owner.post(f"/api/payment/subscriptions/{sub.pk}/pause/").json()["status"] == "paused"
    settle(wired)
    assert _stripe(sub)["status"] == "paused"
    ledger_clean()


def test_a_resume_that_died_after_stripe_answered_is_completed_by_stripe_s_events(
    wired, talker_on_clock, plan, listener, monkeypatch
):
    """The web process dies right after Stripe resumed the subscription: nothing of ours committed. The
    customer.subscription.resumed / .updated events re-read it and reserve the slot again; a retry of the
    resume finds it active and changes nothing; the next renewal is booked once, exact to the cent."""
    from subscriptions import services

    class Died(BaseException):
        """A killed worker: nothing after this point runs (no `except Exception` cleans up)."""

    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan("week", "30.00"), wired)
    first = _bookings(sub, "confirmed")[0]
    assert talker.api.post(f"/api/payment/subscriptions/{sub.pk}/pause/").status_code == 200
    settle(wired)
    talker.advance(WEEK + DAY, wired)

    real_resume = services.gateway.subscription_resume

    def resume_then_die(**kwargs):
        real_resume(**kwargs)
        raise Died

    monkeypatch.setattr(services.gateway, "subscription_resume", resume_then_die)
    with pytest.raises(Died):
        talker.api.post(f"/api/payment/subscriptions/{sub.pk}/resume/")
    monkeypatch.setattr(services.gateway, "subscription_resume", real_resume)
    sub.refresh_from_db()
    assert sub.status == "paused" and _bookings(sub, "reserved") == []  # ours rolled back
    assert _stripe(sub)["status"] == "active"  # Stripe's stands

    settle(wired)  # Stripe's events arrive
    sub.refresh_from_db()
    assert sub.status == "active"
    reserved = _bookings(sub, "reserved")
    assert len(reserved) == 4 and reserved[0].scheduled_at == first.scheduled_at + timedelta(weeks=2)
    retry = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/resume/")
    assert retry.status_code == 200 and retry.json()["status"] == "active"
    assert len(_bookings(sub, "reserved")) == 4

    talker.advance(2 * WEEK + PAID, wired)  # the next period renews
    confirmed = _bookings(sub, "confirmed")
    assert [b.scheduled_at for b in confirmed] == [first.scheduled_at, first.scheduled_at + timedelta(weeks=2)]
    assert (confirmed[1].total_amount, confirmed[1].app_fee, confirmed[1].listener_amount) == (3000, 300, 2700)
    assert sorted(i["amount_paid"] for i in _stripe_invoices(sub)) == [3000, 3000]
    ledger_clean()
