"""Subscribe, pay, renew, fail, cancel and change, through the API, the real SDK and the emulator's signed
webhooks processed by a real worker. After each: every period's booking and earning exact to the cent,
and ledger_check clean (which also compares our invoices with Stripe's)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Payment, Refund, WebhookEvent
from billing.stripe_gateway import as_dict, client
from booking.models import Booking
from payouts import services as payouts
from payouts.models import ListenerPayout, Payout
from payouts.periods import period_last_closed
from subscriptions.models import Subscription, SubscriptionInvoice
from subscriptions.tests.conftest import PAID, WEEK, ledger_clean, pay, settle, subscribe, subscribed_and_paid
from web.tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DAY = 86400


def _bookings(sub, status=None):
    qs = Booking.objects.filter(subscription_session__subscription=sub).order_by("scheduled_at")
    return list(qs.filter(status=status) if status else qs)


def _failed_events():
    return list(WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).values_list("type", "last_error"))


def test_subscribe_with_4242_and_renew_three_weeks_each_period_booked_earned_and_paid_out(
    wired, talker_on_clock, plan, connected_listener, fund_platform
):
    # given a weekly 30.00 plan and a listener who can be paid
    weekly = plan("week", "30.00")
    listener = connected_listener()
    talker = talker_on_clock()

    # when the talker subscribes and pays the first invoice with 4242
    response = subscribe(talker, listener, weekly)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["subscription"]["status"] == "incomplete"
    assert body["payment"]["client_secret"] and body["payment"]["payment_intent_id"]
    reserved = body["subscription"]["bookings"]
    assert [b["status"] for b in reserved] == ["reserved"] * 4
    pay(body["payment"]["client_secret"])
    settle(wired)
    sub = Subscription.objects.get(pk=body["subscription"]["id"])
    eventually(lambda: _bookings(sub, "confirmed"), what="first period's booking confirmed")
    sub.refresh_from_db()
    assert sub.status == "active"

    # and the clock runs through three weekly renewals
    for week in (1, 2, 3):
        talker.advance(week * WEEK + PAID, wired)

    # then each of the four periods is one confirmed booking, paid 30.00, split 3.00 / 27.00, with its earning
    assert _failed_events() == []
    confirmed = _bookings(sub, "confirmed")
    assert len(confirmed) == 4
    starts = [b.scheduled_at for b in confirmed]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [timedelta(weeks=1)] * 3
    for booking in confirmed:
        assert (booking.total_amount, booking.app_fee, booking.listener_amount) == (3000, 300, 2700)
        assert booking.payment.status == Payment.Status.SUCCEEDED and booking.payment.amount == 3000
        assert ListenerPayout.objects.get(booking=booking).amount == 2700
    invoices = SubscriptionInvoice.objects.filter(subscription=sub, status="paid")
    assert invoices.count() == 4 and sorted(invoices.values_list("occurrence", flat=True)) == [0, 1, 2, 3]
    # the slot stays reserved ahead
    assert len(_bookings(sub, "reserved")) == 4
    api = talker.api.get(f"/api/payment/subscriptions/{sub.pk}/").json()
    assert api["status"] == "active" and api["next_session_at"]
    ledger_clean()

    # when the sessions took place and the weekly payout run comes
    fund_platform()
    past = timezone.now() - timedelta(days=14)
    for booking in confirmed:
        Booking.objects.filter(pk=booking.pk).update(status="completed", started_at=past, completed_at=past)
        payouts.earning_session_completed(booking_id=booking.pk, completed_at=past)
    payouts.payout_run(period=period_last_closed("weekly", timezone.now()))

    # then the listener is paid the four shares in one transfer
    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 4 * 2700)
    ledger_clean()


def test_subscribe_with_the_3d_secure_card(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    response = subscribe(talker, listener, plan())
    intent = pay(response.json()["payment"]["client_secret"], "pm_card_threeDSecure2Required")
    assert intent["status"] == "requires_action"
    sub_id = response.json()["subscription"]["id"]
    settle(wired)
    assert Subscription.objects.get(pk=sub_id).status == "incomplete"
    wired.post(f"/_emulator/payment_intents/{intent['id']}/3ds", {"outcome": "succeed"})
    settle(wired)
    sub = Subscription.objects.get(pk=sub_id)
    assert sub.status == "active" and len(_bookings(sub, "confirmed")) == 1
    ledger_clean()


def test_monthly_plan_through_two_renewals(wired, talker_on_clock, plan, listener):
    monthly = plan("month", "70.00")
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, monthly, wired)
    talker.advance(32 * DAY, wired)
    talker.advance(63 * DAY, wired)
    confirmed = _bookings(sub, "confirmed")
    assert len(confirmed) == 3, _failed_events()
    assert [(b.total_amount, b.app_fee, b.listener_amount) for b in confirmed] == [(7000, 700, 6300)] * 3
    assert {b.scheduled_at.day for b in confirmed} == {sub.first_session_at.day} or sub.first_session_at.day > 28
    ledger_clean()


def test_a_renewal_that_keeps_failing_ends_the_subscription_and_frees_its_slots(
    wired, talker_on_clock, plan, listener, mailoutbox
):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    # the talker switches to a card that attaches but cannot be charged
    card = client().v1.payment_methods.attach("pm_card_chargeCustomerFail", params={"customer": sub.stripe_customer_id})
    client().v1.subscriptions.update(sub.stripe_subscription_id, params={"default_payment_method": card.id})

    talker.advance(WEEK + PAID, wired)
    sub.refresh_from_db()
    assert sub.status == "past_due"
    failed = SubscriptionInvoice.objects.get(subscription=sub, billing_reason="subscription_cycle")
    assert failed.status == "open" and failed.booking_id is None
    assert len(_bookings(sub, "confirmed")) == 1
    eventually(lambda: any("failed" in m.subject for m in mailoutbox), what="talker told")

    # Stripe retries (1, 2 and 3 days later), then cancels
    talker.advance(WEEK + 7 * DAY - 600, wired)
    sub.refresh_from_db()
    assert sub.status == "canceled"
    assert _bookings(sub, "reserved") == []
    assert len(_bookings(sub, "confirmed")) == 1  # the paid first period keeps its session
    # nobody holds the slot: a single booking of the second occurrence goes through
    second = [b for b in _bookings(sub) if b.status == "cancelled"][0]
    response = talker.api.post(
        "/api/payment/bookings/create_booking/",
        {
            "listener_id": listener.pk,
            "package_id": sub.plan.package_id,
            "scheduled_at": second.scheduled_at.isoformat(),
        },
        format="json",
    )
    assert response.status_code in (201, 202), response.json()
    ledger_clean()


def test_cancel_at_period_end_keeps_the_paid_session_and_bills_no_more(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/cancel/", {}, format="json")
    assert response.status_code == 200 and response.json()["cancel_at_period_end"] is True
    assert [b.status for b in _bookings(sub) if b.status != "cancelled"] == ["confirmed"]
    talker.advance(2 * WEEK, wired)
    sub.refresh_from_db()
    assert sub.status == "canceled"
    assert SubscriptionInvoice.objects.filter(subscription=sub).count() == 1
    ledger_clean()


def test_cancel_now_refunds_the_current_session_by_the_policy(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    booking = _bookings(sub, "confirmed")[0]
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/cancel/", {"at_period_end": False}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "canceled"
    booking.refresh_from_db()
    assert booking.status == "cancelled"
    refund = Refund.objects.get(payment__booking=booking)
    # two days ahead: the policy's full refund
    assert refund.amount == 3000
    eventually(lambda: Refund.objects.filter(pk=refund.pk, status="succeeded").exists(), what="refund sent")
    settle(wired)
    assert _bookings(sub, "reserved") == []
    stripe_sub = as_dict(client().v1.subscriptions.retrieve(sub.stripe_subscription_id))
    assert stripe_sub["status"] == "canceled"
    ledger_clean()


def test_cancel_now_right_after_a_renewal_stripe_charged_refunds_that_renewal_not_the_last_period(
    wired, talker_on_clock, plan, listener
):
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    first = _bookings(sub, "confirmed")[0]
    # the renewal is charged on Stripe, but its events are not delivered yet
    endpoints = client().v1.webhook_endpoints.list().data
    for endpoint in endpoints:
        client().v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    talker.advance(WEEK + PAID, wired)
    for endpoint in endpoints:  # later events are delivered again; the renewal's were lost
        client().v1.webhook_endpoints.update(endpoint.id, params={"disabled": False})
    assert SubscriptionInvoice.objects.filter(subscription=sub).count() == 1  # we have not heard of it
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/cancel/", {"at_period_end": False}, format="json")
    assert response.status_code == 200, response.json()
    renewal = SubscriptionInvoice.objects.get(subscription=sub, billing_reason="subscription_cycle")
    assert renewal.status == "paid" and renewal.booking is not None
    renewal.booking.refresh_from_db()
    assert renewal.booking.status == "cancelled"
    assert Refund.objects.get(payment__booking=renewal.booking).amount == 3000  # nine days ahead: all back
    first.refresh_from_db()
    assert first.status == "confirmed" and not Refund.objects.filter(payment__booking=first).exists()
    settle(wired)
    eventually(lambda: not Refund.objects.exclude(status="succeeded").exists(), what="refund sent")
    ledger_clean()


def test_cancel_now_of_a_session_once_disputed_cancels_and_leaves_the_money_to_the_operator(
    wired, talker_on_clock, plan, listener
):
    # given a paid period whose charge was disputed and the dispute won (the session is confirmed again)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    booking = _bookings(sub, "confirmed")[0]
    charge_id = Payment.objects.get(booking=booking).stripe_charge_id
    dispute_id = wired.post(f"/_emulator/charges/{charge_id}/dispute")["id"]
    settle(wired)
    wired.post(f"/_emulator/disputes/{dispute_id}/close", {"outcome": "won"})
    settle(wired)
    booking.refresh_from_db()
    assert booking.status == "confirmed"

    # when the talker cancels now
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/cancel/", {"at_period_end": False}, format="json")

    # then the subscription is cancelled here as on Stripe, and no refund is sent that Stripe would refuse
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "canceled"
    stripe_sub = as_dict(client().v1.subscriptions.retrieve(sub.stripe_subscription_id))
    assert stripe_sub["status"] == "canceled"
    assert not Refund.objects.filter(payment__booking=booking).exists()
    settle(wired)
    assert _bookings(sub, "reserved") == []
    ledger_clean()


def test_change_of_plan_bills_the_next_period_as_stripe_prorates(wired, talker_on_clock, plan, listener):
    cheap, dear = plan("week", "30.00"), plan("week", "50.00", minutes=60)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, cheap, wired)
    talker.advance(WEEK // 2, wired)
    response = talker.api.post(f"/api/payment/subscriptions/{sub.pk}/change/", {"plan_id": dear.pk}, format="json")
    assert response.status_code == 200, response.json()
    reserved = _bookings(sub, "reserved")
    assert reserved and all(b.package_id == dear.package_id for b in reserved)
    talker.advance(WEEK + PAID, wired)
    second = _bookings(sub, "confirmed")[1]
    # half a week credited at 30.00 (-15.00), charged at 50.00 (+25.00), then the week at 50.00
    assert (second.total_amount, second.app_fee, second.listener_amount) == (6000, 600, 5400)
    assert second.package_id == dear.package_id
    ledger_clean()


def test_changing_back_and_forth_between_two_plans_leaves_stripe_on_the_last_one(
    wired, talker_on_clock, plan, listener
):
    # given a weekly subscription changed to another weekly plan and back
    cheap, dear = plan("week", "30.00"), plan("week", "50.00", minutes=60)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, cheap, wired)
    change = f"/api/payment/subscriptions/{sub.pk}/change/"
    for chosen in (dear, cheap):
        assert talker.api.post(change, {"plan_id": chosen.pk}, format="json").status_code == 200

    # when the talker chooses the second plan again, the same day
    response = talker.api.post(change, {"plan_id": dear.pk}, format="json")

    # then Stripe bills that plan, as our subscription says (not a replay of the first change's answer)
    assert response.status_code == 200, response.json()
    dear.refresh_from_db()
    stripe_sub = as_dict(client().v1.subscriptions.retrieve(sub.stripe_subscription_id))
    assert stripe_sub["items"]["data"][0]["price"]["id"] == dear.stripe_price_id
    sub.refresh_from_db()
    assert (sub.plan_id, sub.stripe_price_id) == (dear.pk, dear.stripe_price_id)
    settle(wired)
    ledger_clean()


def test_duplicated_and_reordered_events_change_nothing_more(wired, talker_on_clock, plan, listener):
    from billing.webhooks.processing import webhook_event_replay

    wired.configure(chaos_duplicate=0.5, chaos_reorder=0.5, chaos_delay=0.2, chaos_max_delay=0.5)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan(), wired)
    talker.advance(WEEK + PAID, wired)
    talker.advance(2 * WEEK + PAID, wired)
    before = (
        sorted(Booking.objects.values_list("id", "status", "total_amount")),
        Payment.objects.count(),
        ListenerPayout.objects.count(),
        sorted(SubscriptionInvoice.objects.values_list("stripe_invoice_id", "status", "amount_paid", "booking_id")),
    )
    assert len(_bookings(sub, "confirmed")) == 3, _failed_events()
    # every subscription and invoice event again, newest first
    for event in WebhookEvent.objects.filter(type__regex=r"^(invoice|customer\.subscription)").order_by("-id"):
        webhook_event_replay(stripe_event_id=event.stripe_event_id)
    after = (
        sorted(Booking.objects.values_list("id", "status", "total_amount")),
        Payment.objects.count(),
        ListenerPayout.objects.count(),
        sorted(SubscriptionInvoice.objects.values_list("stripe_invoice_id", "status", "amount_paid", "booking_id")),
    )
    assert after == before
    ledger_clean()


def test_two_concurrent_subscriptions_for_one_slot_one_wins(wired, talker_on_clock, plan, listener, live_server):
    import threading

    import requests

    from web.tokens import UserRefreshToken

    weekly = plan()
    first_session_at = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    talkers = [talker_on_clock(), talker_on_clock()]
    barrier = threading.Barrier(len(talkers))
    statuses: list[int] = []
    codes: list[str] = []

    def attempt(talker) -> None:
        token = UserRefreshToken.for_user(talker.user).access_token
        barrier.wait()
        response = requests.post(
            live_server.url + "/api/payment/subscriptions/",
            json={"listener_id": listener.pk, "plan_id": weekly.pk, "first_session_at": first_session_at.isoformat()},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        statuses.append(response.status_code)
        codes.append(response.json().get("error", {}).get("code", ""))

    threads = [threading.Thread(target=attempt, args=(t,)) for t in talkers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409]
    assert "slot_taken" in codes
    assert Subscription.objects.count() == 1
    assert Booking.objects.filter(status="reserved").count() == 4


def test_a_renewal_draft_books_nothing_until_stripe_charges_it_an_hour_later(wired, talker_on_clock, plan, listener):
    # given a paid weekly subscription (its first period booked)
    talker = talker_on_clock()
    sub = subscribed_and_paid(talker, listener, plan("week", "30.00"), wired)
    assert len(_bookings(sub, "confirmed")) == 1

    # when the period ends, then Stripe's renewal invoice is a draft: recorded, nothing booked or charged
    talker.advance(WEEK + 60, wired)
    renewal = SubscriptionInvoice.objects.get(subscription=sub, billing_reason="subscription_cycle")
    assert (renewal.status, renewal.amount_paid, renewal.booking_id) == ("draft", 0, None)
    assert len(_bookings(sub, "confirmed")) == 1 and Payment.objects.count() == 1

    # when Stripe finalizes and charges it an hour later, then that period's booking is confirmed, once
    talker.advance(WEEK + PAID, wired)
    renewal.refresh_from_db()
    assert (renewal.status, renewal.amount_paid) == ("paid", 3000) and renewal.booking_id is not None
    assert len(_bookings(sub, "confirmed")) == 2
    payment = Payment.objects.get(booking_id=renewal.booking_id)
    assert (payment.amount, payment.app_fee, payment.listener_amount) == (3000, 300, 2700)
    assert _failed_events() == []
    ledger_clean()
