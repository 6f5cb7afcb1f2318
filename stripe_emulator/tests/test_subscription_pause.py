"""Pausing and resuming subscriptions (the pause endpoint of API 2026-09-30.endive), through the real SDK."""

import pytest
import stripe

from .test_subscription_schedules import _active, _invoices
from .test_subscriptions import DAY, PAID, WEEK, _clock_customer, _price, _subscribe, _types


def _advance(clock, seconds):
    clock = stripe.test_helpers.TestClock.retrieve(clock.id)
    return stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + seconds)


def _pause(sub):
    return stripe.Subscription.pause(sub.id, bill_for={"unused_time_from": {"type": "none"}})


def test_pause_sets_paused_with_its_reason_emits_paused_and_stops_invoices(emulator):
    clock, cus, sub = _active(_price())
    paused = _pause(sub)
    assert paused.status == "paused"
    assert paused.status_details.paused.type == "subscription"
    assert paused.status_details.paused.subscription.type == "pause_requested"
    assert paused.status_details.paused.transitioned_at == clock.frozen_time
    subscription_events = [t for t in _types() if t.startswith("customer.subscription.")]
    assert subscription_events[-2:] == ["customer.subscription.updated", "customer.subscription.paused"]
    period = paused["items"].data[0].current_period_end
    _advance(clock, 3 * WEEK)
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "paused" and sub["items"].data[0].current_period_end == period
    assert [inv.billing_reason for inv in _invoices(sub.id)] == ["subscription_create"]
    assert "invoice.upcoming" not in _types()


def test_pause_credits_the_unused_time_by_default_on_the_next_invoice(emulator):
    clock, cus, sub = _active(_price(7000))
    _advance(clock, 3 * DAY + DAY // 2)  # half the week used
    stripe.Subscription.pause(sub.id)
    resumed = stripe.Subscription.resume(sub.id, billing_cycle_anchor={"type": "now"})
    invoice = stripe.Invoice.retrieve(resumed.latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [-3500, 7000]
    assert invoice.billing_reason == "subscription_update" and invoice.amount_due == 3500


def test_only_active_or_past_due_subscriptions_pause_and_only_paused_ones_resume(emulator):
    clock, cus = _clock_customer()
    incomplete = _subscribe(cus, _price())
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.pause(incomplete.id)
    assert err.value.code == "subscription_unexpected_state"
    _clock, _cus, active = _active(_price())
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.resume(active.id)
    assert err.value.code == "subscription_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.pause(active.id, bill_for={"unused_time_from": {"type": "yesterday"}})
    assert err.value.param == "bill_for[unused_time_from][type]"


def test_a_subscription_managed_by_a_schedule_cannot_pause(emulator):
    clock, cus, sub = _active(_price())
    stripe.SubscriptionSchedule.create(from_subscription=sub.id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.pause(sub.id)
    assert "schedule" in err.value.user_message


def test_resume_now_starts_a_new_period_paid_on_success_then_renews_from_it(emulator):
    clock, cus, sub = _active(_price(3000))
    _pause(sub)
    clock = _advance(clock, 10 * DAY)
    resumed = stripe.Subscription.resume(
        sub.id, billing_cycle_anchor={"type": "now"}, payment_behavior="resume_on_payment_success"
    )
    assert resumed.status == "active" and resumed.status_details is None
    assert resumed.billing_cycle_anchor == clock.frozen_time
    item = resumed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (clock.frozen_time, clock.frozen_time + WEEK)
    invoice = stripe.Invoice.retrieve(resumed.latest_invoice)
    assert invoice.status == "paid" and invoice.amount_paid == 3000
    assert invoice.billing_reason == "subscription_update"
    assert invoice.lines.data[0].period.start == clock.frozen_time
    types = _types()
    assert types.index("customer.subscription.resumed") > types.index("customer.subscription.paused")
    _advance(clock, WEEK + PAID)
    renewal = _invoices(sub.id)[-1]
    assert renewal.billing_reason == "subscription_cycle" and renewal.status == "paid"
    assert renewal.period_start == clock.frozen_time + WEEK


def test_resume_on_payment_success_that_fails_stays_paused_and_is_retried(emulator):
    clock, cus, sub = _active(_price())
    _pause(sub)
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=cus.id)
    stripe.Subscription.modify(sub.id, default_payment_method=failing.id)
    resumed = stripe.Subscription.resume(sub.id, payment_behavior="resume_on_payment_success")
    invoice = stripe.Invoice.retrieve(resumed.latest_invoice)
    assert resumed.status == "paused"
    assert invoice.status == "open" and invoice.attempt_count == 1 and invoice.next_payment_attempt
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.resume(sub.id)
    assert invoice.id in err.value.user_message
    visa = stripe.PaymentMethod.attach("pm_card_visa", customer=cus.id)
    stripe.Subscription.modify(sub.id, default_payment_method=visa.id)
    _advance(clock, DAY + 60)  # the first retry
    assert stripe.Subscription.retrieve(sub.id).status == "active"
    assert stripe.Invoice.retrieve(invoice.id).status == "paid"


def test_resume_on_payment_attempt_waits_for_the_attempt_then_fails_to_past_due(emulator):
    clock, cus, sub = _active(_price())
    _pause(sub)
    resumed = stripe.Subscription.resume(sub.id)  # resume_on_payment_attempt: nothing attempted yet
    invoice = stripe.Invoice.retrieve(resumed.latest_invoice)
    assert resumed.status == "paused" and invoice.status == "open" and invoice.attempt_count == 0
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=cus.id)
    with pytest.raises(stripe.CardError):
        stripe.Invoice.pay(invoice.id, payment_method=failing.id)
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "past_due"
    assert stripe.Invoice.retrieve(invoice.id).next_payment_attempt is None
    assert [t for t in _types() if t.startswith("customer.subscription.")][-1] == "customer.subscription.resumed"


def test_a_resumption_invoice_not_attempted_in_23_hours_is_voided_and_it_stays_paused(emulator):
    clock, cus, sub = _active(_price())
    _pause(sub)
    invoice_id = stripe.Subscription.resume(sub.id).latest_invoice
    _advance(clock, DAY)
    assert stripe.Invoice.retrieve(invoice_id).status == "void"
    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "paused"
    # and it can be resumed again
    again = stripe.Subscription.resume(sub.id, payment_behavior="resume_on_payment_success")
    assert again.status == "active" and again.latest_invoice != invoice_id


def test_a_resumption_invoice_marked_uncollectible_resumes(emulator):
    clock, cus, sub = _active(_price())
    _pause(sub)
    invoice_id = stripe.Subscription.resume(sub.id).latest_invoice
    stripe.Invoice.mark_uncollectible(invoice_id)
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def test_resume_unchanged_keeps_the_anchor_and_bills_nothing_until_the_next_period(emulator):
    clock, cus, sub = _active(_price(3000))
    anchor = sub.billing_cycle_anchor
    _pause(sub)
    _advance(clock, 2 * WEEK + 2 * DAY)
    resumed = stripe.Subscription.resume(sub.id, billing_cycle_anchor="unchanged", proration_behavior="none")
    assert resumed.status == "active" and resumed.billing_cycle_anchor == anchor
    item = resumed["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (anchor + 2 * WEEK, anchor + 3 * WEEK)
    assert [inv.billing_reason for inv in _invoices(sub.id)] == ["subscription_create"]
    _advance(clock, 5 * DAY + PAID)
    renewal = _invoices(sub.id)[-1]
    assert renewal.status == "paid" and renewal.amount_paid == 3000 and renewal.period_start == anchor + 3 * WEEK


def test_resume_unchanged_with_prorations_charges_the_rest_of_the_period(emulator):
    clock, cus, sub = _active(_price(7000))
    anchor = sub.billing_cycle_anchor
    _pause(sub)
    _advance(clock, WEEK + 3 * DAY + DAY // 2)
    resumed = stripe.Subscription.resume(
        sub.id,
        billing_cycle_anchor={"type": "unchanged"},
        proration_behavior="always_invoice",
        payment_behavior="resume_on_payment_success",
    )
    invoice = stripe.Invoice.retrieve(resumed.latest_invoice)
    assert [line.amount for line in invoice.lines.data] == [3500]
    assert invoice.lines.data[0].period.end == anchor + 2 * WEEK
    assert invoice.status == "paid" and resumed.status == "active"
