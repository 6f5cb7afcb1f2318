"""The subscription API's contract: plans, validation in the house error shape, Idempotency-Key, who sees
what, a renewal asking for 3-D Secure, and the plan's sync to Stripe."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.stripe_gateway import as_dict, client
from booking.models import Booking
from subscriptions import services
from subscriptions.models import Subscription
from subscriptions.tests.conftest import PAID, WEEK, ledger_clean, pay, settle, subscribe
from web.testing import auth_client
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _bookings(sub, status):
    return list(Booking.objects.filter(subscription_session__subscription=sub, status=status).order_by("scheduled_at"))


@pytest.mark.django_db
def test_active_plans_are_public(api_client, plan):
    weekly = plan("week", "30.00")
    plan("month", "70.00", active=False)
    response = api_client.get("/api/payment/subscription_plans/")
    assert response.status_code == 200
    assert [(p["id"], p["interval"], p["price"], p["app_fee_percentage"]) for p in response.json()] == [
        (weekly.pk, "week", "30.00", "10.00")
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"first_session_at": "tomorrow"}, "first_session_at", "invalid"),
        ({"first_session_at": "PAST"}, "first_session_at", "invalid"),
        ({"first_session_at": "FAR"}, "first_session_at", "out_of_range"),
        ({"plan_id": 999999}, "plan_id", "not_found"),
        ({"listener_id": 999999}, "listener_id", "not_found"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(plan, listener, change, field, code):
    talker = auth_client(TalkerFactory(password=None))
    body = {"listener_id": listener.pk, "plan_id": plan().pk, "first_session_at": timezone.now() + timedelta(days=1)}
    body.update(change)
    if body["first_session_at"] == "PAST":
        body["first_session_at"] = timezone.now() - timedelta(hours=1)
    if body["first_session_at"] == "FAR":
        body["first_session_at"] = timezone.now() + timedelta(days=9)
    response = talker.post("/api/payment/subscriptions/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"] or response.json()["error"].get("field") == field
    assert response.json()["error"]["code"] == code
    assert Booking.objects.count() == 0


def test_idempotency_key_answers_the_same_subscription(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    weekly = plan()
    at = timezone.now() + timedelta(days=2)
    first = subscribe(talker, listener, weekly, at, HTTP_IDEMPOTENCY_KEY="sub-once")
    again = subscribe(talker, listener, weekly, at, HTTP_IDEMPOTENCY_KEY="sub-once")
    assert first.status_code == 201 and again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["subscription"]["id"] == first.json()["subscription"]["id"]
    assert Subscription.objects.count() == 1


def test_only_participants_see_it_and_only_the_talker_sees_the_secret(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    response = subscribe(talker, listener, plan())
    sub_id = response.json()["subscription"]["id"]
    as_listener = auth_client(listener).get(f"/api/payment/subscriptions/{sub_id}/").json()
    assert as_listener["payment"]["client_secret"] is None and as_listener["payment"]["payment_intent_id"]
    stranger = auth_client(TalkerFactory(password=None))
    assert stranger.get(f"/api/payment/subscriptions/{sub_id}/").status_code == 404
    assert stranger.post(f"/api/payment/subscriptions/{sub_id}/cancel/", {}, format="json").status_code == 404
    assert [s["id"] for s in talker.api.get("/api/payment/subscriptions/").json()["results"]] == [sub_id]


def test_a_renewal_asking_for_3d_secure_sends_the_talker_to_confirm_it(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    response = subscribe(talker, listener, plan())
    intent = pay(response.json()["payment"]["client_secret"], "pm_card_threeDSecure2Required")
    wired.post(f"/_emulator/payment_intents/{intent['id']}/3ds", {"outcome": "succeed"})
    settle(wired)
    sub = Subscription.objects.get(pk=response.json()["subscription"]["id"])
    talker.advance(WEEK + PAID, wired)
    body = talker.api.get(f"/api/payment/subscriptions/{sub.pk}/").json()
    assert body["status"] == "past_due"
    renewal_intent = body["payment"]["client_secret"].split("_secret_")[0]
    assert renewal_intent != intent["id"]
    assert len(_bookings(sub, "confirmed")) == 1
    # the talker completes the challenge (Stripe.js handleNextAction)
    wired.post(f"/_emulator/payment_intents/{renewal_intent}/3ds", {"outcome": "succeed"})
    settle(wired)
    assert talker.api.get(f"/api/payment/subscriptions/{sub.pk}/").json()["status"] == "active"
    assert len(_bookings(sub, "confirmed")) == 2
    ledger_clean()


def test_plan_sync_creates_the_product_and_a_new_price_when_the_price_changes(stripe_emulator, plan, db):
    weekly = plan("week", "30.00")
    synced = services.plan_sync(plan_id=weekly.pk)
    price = as_dict(client().v1.prices.retrieve(synced.stripe_price_id))
    assert (price["unit_amount"], price["recurring"]["interval"], price["product"]) == (
        3000,
        "week",
        synced.stripe_product_id,
    )
    assert services.plan_sync(plan_id=weekly.pk).stripe_price_id == synced.stripe_price_id  # nothing changed
    weekly.refresh_from_db()
    weekly.price_cents = 3500
    weekly.save()
    resynced = services.plan_sync(plan_id=weekly.pk)
    assert resynced.stripe_price_id != synced.stripe_price_id
    assert as_dict(client().v1.prices.retrieve(resynced.stripe_price_id))["unit_amount"] == 3500
    assert as_dict(client().v1.prices.retrieve(synced.stripe_price_id))["active"] is False


def test_a_price_changed_and_changed_back_the_same_day_is_sold_again(stripe_emulator, plan, db):
    # given a plan whose price went from 30.00 to 35.00 (the 30.00 Price deactivated on Stripe)
    weekly = plan("week", "30.00")
    first = services.plan_sync(plan_id=weekly.pk).stripe_price_id
    weekly.refresh_from_db()
    weekly.price_cents = 3500
    weekly.save()
    services.plan_sync(plan_id=weekly.pk)

    # when the operator puts it back to 30.00 within Stripe's 24-hour idempotency window
    weekly.refresh_from_db()
    weekly.price_cents = 3000
    weekly.save()
    synced = services.plan_sync(plan_id=weekly.pk)

    # then the plan's Price is one Stripe sells: 30.00 and active (a subscription to it is accepted)
    price = as_dict(client().v1.prices.retrieve(synced.stripe_price_id))
    assert (price["unit_amount"], price["active"]) == (3000, True)
    assert synced.stripe_price_id == first  # Stripe answered the first creation again: the same Price


@pytest.mark.django_db
def test_a_plan_on_a_package_withdrawn_from_sale_cannot_be_subscribed(plan, listener):
    # given a plan the plan list hides: its package is no longer sold
    hidden = plan("week", "30.00")
    hidden.package.is_active = False
    hidden.package.save(update_fields=["is_active"])
    talker = auth_client(TalkerFactory(password=None))
    body = {"listener_id": listener.pk, "plan_id": hidden.pk, "first_session_at": timezone.now() + timedelta(days=1)}

    response = talker.post("/api/payment/subscriptions/", body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "not_found"
    assert "plan_id" in response.json()["error"]["fields"]
    assert not Subscription.objects.exists()


def test_an_unpaid_subscription_frees_its_slots_when_an_unpaid_booking_would(wired, talker_on_clock, plan, listener):
    talker = talker_on_clock()
    weekly = plan()
    unpaid = subscribe(talker, listener, weekly).json()
    paid = subscribe(talker, ListenerFactory(password=None), weekly).json()
    pay(paid["payment"]["client_secret"])  # paid at the last minute: its events may not be processed yet
    late = timezone.now() - timedelta(minutes=31)
    Subscription.objects.filter(pk__in=[unpaid["subscription"]["id"], paid["subscription"]["id"]]).update(
        created_at=late
    )
    assert services.subscriptions_expire_unpaid() == 1
    settle(wired)
    expired = Subscription.objects.get(pk=unpaid["subscription"]["id"])
    assert expired.status == "canceled"
    assert not Booking.objects.filter(subscription_session__subscription=expired, status="reserved").exists()
    stripe_sub = as_dict(client().v1.subscriptions.retrieve(expired.stripe_subscription_id))
    assert stripe_sub["status"] == "canceled"
    assert as_dict(client().v1.invoices.retrieve(stripe_sub["latest_invoice"]))["status"] == "void"
    intent = unpaid["payment"]["payment_intent_id"]
    assert as_dict(client().v1.payment_intents.retrieve(intent))["status"] == "canceled"
    kept = Subscription.objects.get(pk=paid["subscription"]["id"])
    assert kept.status == "active" and len(_bookings(kept, "confirmed")) == 1
    assert services.subscriptions_expire_unpaid() == 0
    ledger_clean()
