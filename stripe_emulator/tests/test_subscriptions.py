"""Products, prices, SetupIntents, subscriptions, invoices and test clocks through the real `stripe` SDK."""

import json
import os
import time

import pytest
import stripe

WEEK = 7 * 86400
DAY = 86400
PAID = 3600 + 60  # past a period end, the renewal draft's hour (then finalized and charged) and a minute
FIXTURES = "/work/shared/stripe/fixtures3.json"


def _price(amount=3000, interval="week"):
    product = stripe.Product.create(name="Talk %d" % amount)
    return stripe.Price.create(product=product.id, currency="usd", unit_amount=amount, recurring={"interval": interval})


def _clock_customer(start=None):
    clock = stripe.test_helpers.TestClock.create(frozen_time=start or int(time.time()))
    cus = stripe.Customer.create(email="t@example.com", test_clock=clock.id)
    return clock, cus


def _subscribe(cus, price, **extra):
    return stripe.Subscription.create(
        customer=cus.id,
        items=[{"price": price.id}],
        payment_behavior="default_incomplete",
        payment_settings={"save_default_payment_method": "on_subscription"},
        expand=["latest_invoice.confirmation_secret"],
        **extra,
    )


def _pay_first(sub, pm="pm_card_visa"):
    secret = sub.latest_invoice.confirmation_secret.client_secret
    pi_id = secret.split("_secret_")[0]
    return stripe.PaymentIntent.confirm(pi_id, payment_method=pm)


def _types():
    return [e.type for e in reversed(stripe.Event.list(limit=100).data)]


def _types_in_step():
    """The event types without `charge.updated`: a paid charge's capture settles half a second later
    (asynchronous capture, as Stripe does), so that event may land after any later request's."""
    return [t for t in _types() if t != "charge.updated"]


def test_products_and_recurring_prices(emulator):
    price = _price(5000, "month")
    assert price.type == "recurring" and price.recurring.interval == "month" and price.unit_amount == 5000
    assert [p.id for p in stripe.Price.list(product=price.product).data] == [price.id]
    stripe.Price.modify(price.id, active=False)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.create(customer=stripe.Customer.create().id, items=[{"price": price.id}])
    assert err.value.param == "items[0][price]"
    assert stripe.Product.modify(price.product, name="Renamed").name == "Renamed"


def test_default_incomplete_subscription_is_activated_by_confirming_its_first_invoice(emulator):
    price = _price()
    cus = stripe.Customer.create(email="a@example.com")
    sub = _subscribe(cus, price)
    assert sub.status == "incomplete"
    inv = sub.latest_invoice
    assert inv.status == "open" and inv.amount_due == 3000 and inv.billing_reason == "subscription_create"
    assert inv.parent.subscription_details.subscription == sub.id
    assert inv.confirmation_secret.type == "payment_intent"
    # includable: absent unless expanded
    assert "confirmation_secret" not in stripe.Invoice.retrieve(inv.id).to_dict()
    pi = _pay_first(sub)
    assert pi.status == "succeeded" and pi.amount == 3000
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "active" and sub.default_payment_method == pi.payment_method
    item = sub["items"].data[0]
    assert item.current_period_end - item.current_period_start == WEEK
    inv = stripe.Invoice.retrieve(inv.id, expand=["payments"])
    assert inv.status == "paid" and inv.amount_paid == 3000
    assert [(p.status, p.payment.payment_intent) for p in inv.payments.data] == [("paid", pi.id)]
    types = _types()
    for t in (
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice_payment.paid",
        "invoice.paid",
        "customer.subscription.updated",
    ):
        assert t in types, t
    assert stripe.PaymentMethod.retrieve(pi.payment_method).customer == cus.id


def test_three_d_secure_first_payment(emulator):
    sub = _subscribe(stripe.Customer.create(), _price())
    pi = _pay_first(sub, "pm_card_threeDSecure2Required")
    assert pi.status == "requires_action"
    assert stripe.Subscription.retrieve(sub.id).status == "incomplete"
    emulator.post("/_emulator/payment_intents/%s/3ds" % pi.id, {"outcome": "succeed"})
    assert stripe.Subscription.retrieve(sub.id).status == "active"
    assert stripe.Invoice.retrieve(sub.latest_invoice.id).status == "paid"


def test_a_renewal_invoice_is_a_draft_for_an_hour_then_finalized_and_charged(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    _pay_first(sub)
    end = stripe.Subscription.retrieve(sub.id)["items"].data[0].current_period_end

    # at the period end: the new period has begun and its invoice is a draft, nothing charged
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end + 60)
    renewal = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert (renewal.billing_reason, renewal.status, renewal.amount_paid) == ("subscription_cycle", "draft", 0)
    assert renewal.automatically_finalizes_at == renewal.created + 3600
    assert "invoice.created" in _types() and "invoice.finalized" not in _types()[-3:]

    # an hour later: finalized (automatically_finalizes_at cleared), then paid with the saved card
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end + 3600 + 60)
    renewal = stripe.Invoice.retrieve(renewal.id)
    assert (renewal.status, renewal.amount_paid, renewal.automatically_finalizes_at) == ("paid", 3000, None)
    assert renewal.status_transitions.finalized_at == renewal.created + 3600
    assert _types().count("invoice.paid") == 2

    # a draft finalized by hand before its hour is not finalized again by the clock
    week2 = end + WEEK
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=week2 + 60)
    draft = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert draft.status == "draft"
    assert stripe.Invoice.pay(draft.id).status == "paid"
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=week2 + 2 * 3600)
    assert stripe.Invoice.retrieve(draft.id).amount_paid == 3000 and _types().count("invoice.paid") == 3


def test_test_clock_renews_weekly_and_charges_the_saved_card(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    _pay_first(sub)
    for week in (1, 2, 3):
        stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + week * WEEK + PAID)
    invoices = stripe.Invoice.list(subscription=sub.id).data
    assert [(i.billing_reason, i.status, i.amount_paid) for i in reversed(invoices)] == [
        ("subscription_create", "paid", 3000),
        ("subscription_cycle", "paid", 3000),
        ("subscription_cycle", "paid", 3000),
        ("subscription_cycle", "paid", 3000),
    ]
    starts = sorted(i.period_start for i in invoices)
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [WEEK, WEEK, WEEK]
    assert _types().count("invoice.upcoming") == 3
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "active" and sub["items"].data[0].current_period_start == starts[-1]
    assert stripe.test_helpers.TestClock.retrieve(clock.id).status == "ready"


def test_monthly_periods_keep_the_day_of_the_month(emulator):
    jan31 = 1800000000 - (1800000000 % DAY)  # any fixed day
    clock, cus = _clock_customer(jan31)
    sub = _subscribe(cus, _price(7000, "month"))
    _pay_first(sub)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=jan31 + 62 * DAY)
    invoices = stripe.Invoice.list(subscription=sub.id).data
    assert len(invoices) == 3 and all(i.status == "paid" for i in invoices)
    days = {time.gmtime(i.period_start).tm_mday for i in invoices}
    assert len(days) == 1 or min(days) >= 28


def test_card_that_fails_later_is_retried_then_the_subscription_is_canceled(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    _pay_first(sub)
    pm = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=cus.id)
    stripe.Subscription.modify(sub.id, default_payment_method=pm.id)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + WEEK + PAID)
    sub = stripe.Subscription.retrieve(sub.id)
    renewal = stripe.Invoice.retrieve(sub.latest_invoice)
    assert sub.status == "past_due" and renewal.status == "open" and renewal.attempt_count == 1
    assert renewal.next_payment_attempt == renewal.status_transitions.finalized_at + 1 * DAY  # a day after the attempt
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + WEEK + 6 * DAY + PAID)
    sub = stripe.Subscription.retrieve(sub.id)
    renewal = stripe.Invoice.retrieve(renewal.id)
    assert sub.status == "canceled" and sub.cancellation_details.reason == "payment_failed"
    assert renewal.attempt_count == 4 and renewal.next_payment_attempt is None
    types = _types_in_step()
    assert types.count("invoice.payment_failed") == 4 and types[-1] == "test_helpers.test_clock.ready"
    assert "customer.subscription.deleted" in types


def test_renewal_needing_authentication_waits_for_the_customer(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    pi = _pay_first(sub, "pm_card_threeDSecure2Required")
    emulator.post("/_emulator/payment_intents/%s/3ds" % pi.id, {"outcome": "succeed"})
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + WEEK + PAID)
    sub = stripe.Subscription.retrieve(sub.id, expand=["latest_invoice.confirmation_secret"])
    assert sub.status == "past_due"
    renewal_pi = sub.latest_invoice.confirmation_secret.client_secret.split("_secret_")[0]
    assert stripe.PaymentIntent.retrieve(renewal_pi).status == "requires_action"
    assert "invoice.payment_action_required" in _types()
    emulator.post("/_emulator/payment_intents/%s/3ds" % renewal_pi, {"outcome": "succeed"})
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def test_cancel_at_period_end_and_cancel_now(emulator):
    clock, cus = _clock_customer()
    price = _price()
    sub = _subscribe(cus, price)
    _pay_first(sub)
    sub = stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert sub.cancel_at_period_end and sub.cancel_at == sub["items"].data[0].current_period_end
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + WEEK + PAID)
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "canceled" and len(stripe.Invoice.list(subscription=sub.id).data) == 1
    other = _subscribe(cus, price)
    _pay_first(other)
    gone = stripe.Subscription.cancel(other.id)
    assert gone.status == "canceled" and gone.ended_at
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.cancel(other.id)


def test_price_change_prorates_on_the_next_invoice(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price(3000))
    _pay_first(sub)
    half = clock.frozen_time + WEEK // 2
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=half)
    dearer = _price(5000)
    item = sub["items"].data[0]
    sub = stripe.Subscription.modify(sub.id, items=[{"id": item.id, "price": dearer.id}])
    assert sub["items"].data[0].price.id == dearer.id
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + WEEK + PAID)
    renewal = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    # half a week unused at 30.00 credited, half a week at 50.00 charged, then a full week at 50.00
    assert [line.amount for line in renewal.lines.data] == [-1500, 2500, 5000]
    assert renewal.amount_paid == 6000


def test_pause_collection_voids_renewals_until_resumed(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    _pay_first(sub)
    stripe.Subscription.modify(sub.id, pause_collection={"behavior": "void"})
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + WEEK + PAID)
    assert stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice).status == "void"
    sub = stripe.Subscription.modify(sub.id, pause_collection="")
    assert sub.pause_collection is None
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + 2 * WEEK + PAID)
    assert stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice).status == "paid"


def test_incomplete_subscription_expires_after_23_hours(emulator):
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + DAY)
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "incomplete_expired"
    assert stripe.Invoice.retrieve(sub.latest_invoice).status == "void"


def test_setup_intent_saves_a_card_for_off_session_invoices(emulator):
    cus = stripe.Customer.create()
    si = stripe.SetupIntent.create(customer=cus.id, allowed_payment_method_types=["card"])
    assert si.status == "requires_payment_method" and si.client_secret.startswith(si.id + "_secret_")
    si = stripe.SetupIntent.confirm(si.id, payment_method="pm_card_visa")
    assert si.status == "succeeded"
    stripe.Customer.modify(cus.id, invoice_settings={"default_payment_method": si.payment_method})
    sub = stripe.Subscription.create(customer=cus.id, items=[{"price": _price().id}])
    assert sub.status == "active"
    assert stripe.Invoice.retrieve(sub.latest_invoice).status == "paid"


@pytest.mark.skipif(not os.path.exists(FIXTURES), reason="fixtures3.json not available")
def test_shapes_match_the_fixtures(emulator):
    with open(FIXTURES) as f:
        res = json.load(f)["resources"]
    clock, cus = _clock_customer()
    sub = _subscribe(cus, _price())
    _pay_first(sub)
    inv = stripe.Invoice.retrieve(sub.latest_invoice.id).to_dict()
    served = {
        "subscription": stripe.Subscription.retrieve(sub.id).to_dict(),
        "invoice": inv,
        "price": stripe.Price.retrieve(sub["items"].data[0].price.id).to_dict(),
        "product": stripe.Product.retrieve(sub["items"].data[0].price.product).to_dict(),
        "test_helpers.test_clock": stripe.test_helpers.TestClock.retrieve(clock.id).to_dict(),
        "invoice_payment": stripe.InvoicePayment.list(invoice=inv["id"]).data[0].to_dict(),
        "setup_intent": stripe.SetupIntent.create().to_dict(),
        "subscription_item": stripe.Subscription.retrieve(sub.id)["items"].data[0].to_dict(),
    }
    # fields of API versions newer than the sample (the SDK's SetupIntent type has it)
    newer = {"setup_intent": {"allowed_payment_method_types"}, "subscription": {"status_details"}}
    for kind, obj in served.items():
        want = (set(res[kind]) | newer.get(kind, set())) - {"object"}
        assert set(obj) - {"object"} == want, (kind, set(obj) ^ want)
