"""A change of plan across intervals (weekly ⇄ monthly), through the API, the real SDK, the emulator's
subscription schedules and test clocks, and its signed webhooks processed by a real worker: the current
period stays as it was, the next one is billed at the new price and interval, every period is one
confirmed booking and earning exact to the cent, the reservations follow the new interval, and our
subscriptions and invoices say what Stripe's say."""

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import Payment, WebhookEvent
from billing.stripe_gateway import as_dict, client
from booking.models import Booking
from payouts.models import ListenerPayout
from subscriptions import services
from subscriptions.models import Subscription, SubscriptionInvoice
from subscriptions.tests.conftest import PAID, ledger_clean, settle, subscribed_and_paid

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DAY = 86400


def _bookings(sub, status=None):
    qs = Booking.objects.filter(subscription_session__subscription=sub).order_by("scheduled_at")
    return list(qs.filter(status=status) if status else qs)


def _failed_events():
    return list(WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).values_list("type", "last_error"))


def _to(talker, at, emulator, seconds=PAID):
    """The talker's clock `seconds` past the datetime `at`."""
    talker.advance(int(at.timestamp()) - talker.started + seconds, emulator)


def _stripe_invoices(sub):
    page = client().v1.invoices.list(params={"subscription": sub.stripe_subscription_id, "limit": 100})
    return sorted((i.id, i.status, i.amount_paid, i.billing_reason) for i in page.data)


def _ours(sub):
    rows = SubscriptionInvoice.objects.filter(subscription=sub)
    return sorted(rows.values_list("stripe_invoice_id", "status", "amount_paid", "billing_reason"))


def _split(booking):
    return (booking.total_amount, booking.app_fee, booking.listener_amount)


def _state():
    return (
        sorted(Booking.objects.values_list("id", "status", "total_amount", "scheduled_at", "package_id")),
        Payment.objects.count(),
        ListenerPayout.objects.count(),
        sorted(SubscriptionInvoice.objects.values_list("stripe_invoice_id", "status", "amount_paid", "booking_id")),
        sorted(Subscription.objects.values_list("id", "plan_id", "billing_anchor", "pending_plan_id", "status")),
    )


def test_weekly_to_monthly_from_the_next_period(wired, talker_on_clock, plan, listener):
    from billing.webhooks.processing import webhook_event_replay

    # the monthly plan takes 20 %: each period's split must be its own plan's
    weekly, monthly = plan("week", "30.00"), plan("month", "70.00", minutes=60, app_fee_percent=Decimal("20"))
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, weekly, wired)
    first = _bookings(sub, "confirmed")[0]
    week_end = sub.current_period_end
    talker.advance(3 * DAY, wired)

    # when the talker changes to the monthly plan mid-week
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/change/", {"plan_id": monthly.pk}, format="json")

    # then the change waits for the next period, and the API says so
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["plan"]["id"] == weekly.pk and body["pending_change"]["plan"]["id"] == monthly.pk
    assert body["pending_change"]["effective_at"].startswith(week_end.strftime("%Y-%m-%dT%H:%M"))
    assert body["standing_slot"]["interval"] == "month"
    sub.refresh_from_db()
    stripe_sub = as_dict(client().v1.subscriptions.retrieve(sub.stripe_subscription_id))
    assert stripe_sub["schedule"] == sub.stripe_schedule_id and sub.stripe_schedule_id
    # the reservations follow the monthly slot: the same day of the month and time, from the next period
    reserved = _bookings(sub, "reserved")
    assert [b.scheduled_at for b in reserved] == [
        services.add_intervals(first.scheduled_at, m, "month") for m in (1, 2, 3, 4)
    ]
    assert all(b.package_id == monthly.package_id for b in reserved)
    assert week_end <= reserved[0].scheduled_at < services.add_intervals(week_end, 1, "month")

    # and the current week runs out as it was
    _to(talker, week_end, wired, seconds=-120)
    sub.refresh_from_db()
    assert sub.plan_id == weekly.pk and SubscriptionInvoice.objects.filter(subscription=sub).count() == 1

    # at its end the monthly plan takes over: its first month is invoiced and booked at once
    _to(talker, week_end, wired)
    sub.refresh_from_db()
    assert _failed_events() == []
    assert (sub.plan_id, sub.pending_plan_id, sub.status) == (monthly.pk, None, "active")
    assert sub.current_period_start == week_end
    assert sub.current_period_end == services.add_intervals(week_end, 1, "month")
    confirmed = _bookings(sub, "confirmed")
    assert [_split(b) for b in confirmed] == [(3000, 300, 2700), (7000, 1400, 5600)]
    assert confirmed[1].package_id == monthly.package_id and confirmed[1].scheduled_at == reserved[0].scheduled_at
    assert ListenerPayout.objects.get(booking=confirmed[1]).amount == 5600
    month_end = sub.current_period_end

    # and renews monthly after it (the schedule, its last phase over, releases the subscription)
    _to(talker, month_end, wired)
    sub.refresh_from_db()
    confirmed = _bookings(sub, "confirmed")
    assert [_split(b) for b in confirmed] == [(3000, 300, 2700), (7000, 1400, 5600), (7000, 1400, 5600)]
    assert [b.scheduled_at for b in confirmed[1:]] == [b.scheduled_at for b in reserved[:2]]
    assert sub.stripe_schedule_id == ""
    schedule = as_dict(client().v1.subscription_schedules.retrieve(stripe_sub["schedule"]))
    assert schedule["status"] == "released"
    assert len(_bookings(sub, "reserved")) == 4
    assert _ours(sub) == _stripe_invoices(sub)
    assert [r[2] for r in _ours(sub)] and sum(r[2] for r in _ours(sub)) == 3000 + 7000 + 7000
    ledger_clean()

    # every subscription, schedule and invoice event again, newest first, changes nothing
    before = _state()
    for event in WebhookEvent.objects.filter(
        type__regex=r"^(invoice|customer\.subscription|subscription_schedule)"
    ).order_by("-id"):
        webhook_event_replay(stripe_event_id=event.stripe_event_id)
    assert _state() == before
    ledger_clean()


def test_monthly_to_weekly_from_the_next_period(wired, talker_on_clock, plan, listener):
    monthly, weekly = plan("month", "70.00", minutes=60), plan("week", "20.00", minutes=20)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, monthly, wired)
    first = _bookings(sub, "confirmed")[0]
    month_end = sub.current_period_end
    talker.advance(10 * DAY, wired)

    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/change/", {"plan_id": weekly.pk}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["standing_slot"]["weekday"] == f"{first.scheduled_at:%A}"
    reserved = _bookings(sub, "reserved")
    assert all(b.package_id == weekly.package_id for b in reserved)
    assert [b.scheduled_at.weekday() for b in reserved] == [first.scheduled_at.weekday()] * 4
    assert month_end <= reserved[0].scheduled_at < month_end + timedelta(weeks=1)

    _to(talker, month_end, wired)
    _to(talker, month_end + timedelta(weeks=1), wired)
    sub.refresh_from_db()
    assert _failed_events() == []
    assert (sub.plan_id, sub.current_period_start) == (weekly.pk, month_end + timedelta(weeks=1))
    confirmed = _bookings(sub, "confirmed")
    assert [_split(b) for b in confirmed] == [(7000, 700, 6300), (2000, 200, 1800), (2000, 200, 1800)]
    assert [b.scheduled_at for b in confirmed[1:]] == [b.scheduled_at for b in reserved[:2]]
    starts = [b.scheduled_at for b in confirmed[1:] + _bookings(sub, "reserved")]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [timedelta(weeks=1)] * (len(starts) - 1)
    assert _ours(sub) == _stripe_invoices(sub)
    ledger_clean()


def test_cancel_with_a_pending_change_releases_the_schedule(wired, talker_on_clock, plan, listener):
    weekly, monthly = plan("week", "30.00"), plan("month", "70.00", minutes=60)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, weekly, wired)
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/change/", {"plan_id": monthly.pk}, format="json")
    assert response.status_code == 200, response.json()
    schedule_id = Subscription.objects.get(pk=sub.pk).stripe_schedule_id

    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/cancel/", {}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["cancel_at_period_end"] is True and response.json()["pending_change"] is None
    schedule = as_dict(client().v1.subscription_schedules.retrieve(schedule_id))
    assert schedule["status"] == "released"
    assert [b.status for b in _bookings(sub) if b.status != "cancelled"] == ["confirmed"]
    _to(talker, sub.current_period_end, wired)
    settle(wired)
    sub.refresh_from_db()
    assert (sub.status, sub.plan_id) == ("canceled", weekly.pk)
    assert _ours(sub) == _stripe_invoices(sub) and len(_ours(sub)) == 1
    assert _failed_events() == []
    ledger_clean()


def test_a_slot_outside_the_new_first_period_is_refused_naming_the_field(wired, talker_on_clock, plan, listener):
    weekly, monthly = plan("week", "30.00"), plan("month", "70.00", minutes=60)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, weekly, wired)
    far = sub.current_period_end + timedelta(days=40)
    response = talker.api.post(
        f"/api/payment/subscriptions/{sub.pk}/change/",
        {"plan_id": monthly.pk, "next_session_at": far.isoformat()},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "out_of_range"
    sub.refresh_from_db()
    assert sub.pending_plan_id is None and sub.stripe_schedule_id == ""
    assert len(_bookings(sub, "reserved")) == 4
