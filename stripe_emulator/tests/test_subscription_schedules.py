"""Subscription schedules and changes of billing interval, through the real `stripe` SDK."""

import json
import os

import pytest
import stripe

from .test_subscriptions import (
    DAY,
    FIXTURES,
    PAID,
    WEEK,
    _clock_customer,
    _pay_first,
    _price,
    _subscribe,
    _types,
    _types_in_step,
)


def _active(price, start=None):
    clock, cus = _clock_customer(start)
    sub = _subscribe(cus, price)
    _pay_first(sub)
    return clock, cus, stripe.Subscription.retrieve(sub.id)


def _schedule_change(sub, new_price, **phase):
    sched = stripe.SubscriptionSchedule.create(from_subscription=sub.id)
    item = sub["items"].data[0]
    return stripe.SubscriptionSchedule.modify(
        sched.id,
        end_behavior="release",
        phases=[
            {
                "items": [{"price": item.price.id, "quantity": 1}],
                "start_date": sched.phases[0].start_date,
                "end_date": item.current_period_end,
            },
            dict({"items": [{"price": new_price.id, "quantity": 1}]}, **phase),
        ],
    )


def _invoices(sub_id):
    return list(reversed(stripe.Invoice.list(subscription=sub_id).data))


def test_from_subscription_makes_one_phase_of_the_current_period_and_names_the_schedule(emulator):
    _, cus, sub = _active(_price())
    item = sub["items"].data[0]
    sched = stripe.SubscriptionSchedule.create(from_subscription=sub.id)
    assert sched.id.startswith("sub_sched_") and sched.status == "active" and sched.end_behavior == "release"
    assert sched.subscription == sub.id and sched.customer == cus.id
    assert (sched.current_phase.start_date, sched.current_phase.end_date) == (
        item.current_period_start,
        item.current_period_end,
    )
    assert [(p.start_date, p.end_date, p["items"][0].price) for p in sched.phases] == [
        (item.current_period_start, item.current_period_end, item.price.id)
    ]
    assert stripe.Subscription.retrieve(sub.id).schedule == sched.id
    assert stripe.SubscriptionSchedule.retrieve(sched.id).id == sched.id
    assert [s.id for s in stripe.SubscriptionSchedule.list(customer=cus.id).data] == [sched.id]
    # one schedule per subscription
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.SubscriptionSchedule.create(from_subscription=sub.id)
    assert err.value.param == "from_subscription"
    types = _types_in_step()
    assert "subscription_schedule.created" in types and types[-1] == "customer.subscription.updated"


def test_phases_are_validated(emulator):
    _, _, sub = _active(_price())
    sched = stripe.SubscriptionSchedule.create(from_subscription=sub.id)
    item = sub["items"].data[0]
    monthly = _price(7000, "month")
    cases = [
        (
            [{"items": [{"price": item.price.id}], "start_date": sched.phases[0].start_date + 60}],
            "phases[0][start_date]",
        ),
        (
            [{"items": [{"price": item.price.id}]}, {"items": [{"price": monthly.id}]}],
            "phases[0][end_date]",
        ),
        ([{"items": [{"quantity": 1}]}], "phases[0][items][0][price]"),
        ([{"items": [{"price": "price_nope"}]}], "phases[0][items][0][price]"),
    ]
    for phases, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as err:
            stripe.SubscriptionSchedule.modify(sched.id, phases=phases)
        assert err.value.param == param, (phases, err.value)
    with pytest.raises(stripe.InvalidRequestError) as err:  # not in this API version: `duration` replaced it
        stripe.SubscriptionSchedule.modify(sched.id, phases=[{"items": [{"price": item.price.id}], "iterations": 2}])
    assert err.value.param == "phases[0][iterations]"
    # a managed subscription's cancellation goes through the schedule
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert "managed by the subscription schedule" in str(err.value)


def test_weekly_to_monthly_at_the_period_end_moves_the_anchor_and_invoices_the_new_period(emulator):
    clock, _, sub = _active(_price(3000, "week"))
    end = sub["items"].data[0].current_period_end
    monthly = _price(7000, "month")
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=clock.frozen_time + 3 * DAY)
    sched = _schedule_change(sub, monthly)
    assert [p.end_date for p in sched.phases] == [end, end + (sched.phases[1].end_date - end)]
    assert sched.phases[1].start_date == end and sched.phases[1].end_date - end >= 28 * DAY

    # nothing changes within the current period
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end - 60)
    assert stripe.Subscription.retrieve(sub.id)["items"].data[0].price.id == sub["items"].data[0].price.id
    assert len(_invoices(sub.id)) == 1

    # at its end: the monthly price, anchored at the phase start, invoiced and paid at once
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end + 60)
    after = stripe.Subscription.retrieve(sub.id)
    item = after["items"].data[0]
    assert item.price.id == monthly.id and after.billing_cycle_anchor == end
    assert item.current_period_start == end and 28 * DAY <= item.current_period_end - end <= 31 * DAY
    invoices = _invoices(sub.id)
    assert [(i.billing_reason, i.status, i.amount_paid) for i in invoices] == [
        ("subscription_create", "paid", 3000),
        ("subscription_update", "paid", 7000),
    ]
    second = invoices[1]
    assert (second.period_start, second.period_end) == (end, item.current_period_end)
    assert [
        (ln.amount, ln.period.start, ln.parent.subscription_item_details.proration) for ln in second.lines.data
    ] == [(7000, end, False)]
    assert stripe.SubscriptionSchedule.retrieve(sched.id).current_phase.start_date == end

    # one month on: the schedule is done and released, the subscription renews monthly on its own
    month_end = item.current_period_end
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=month_end + PAID)
    sched = stripe.SubscriptionSchedule.retrieve(sched.id)
    assert sched.status == "released" and sched.released_subscription == sub.id and sched.subscription is None
    after = stripe.Subscription.retrieve(sub.id)
    assert after.schedule is None and after.status == "active"
    invoices = _invoices(sub.id)
    assert [(i.billing_reason, i.amount_paid, i.period_start) for i in invoices[2:]] == [
        ("subscription_cycle", 7000, month_end)
    ]
    types = _types()
    for t in ("subscription_schedule.updated", "subscription_schedule.released"):
        assert t in types, t


def test_monthly_to_weekly_then_renews_weekly(emulator):
    clock, _, sub = _active(_price(7000, "month"))
    end = sub["items"].data[0].current_period_end
    weekly = _price(2000, "week")
    _schedule_change(sub, weekly)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end + WEEK + PAID)
    after = stripe.Subscription.retrieve(sub.id)
    assert after.billing_cycle_anchor == end and after["items"].data[0].price.id == weekly.id
    invoices = _invoices(sub.id)
    assert [(i.billing_reason, i.amount_paid, i.period_start, i.period_end) for i in invoices] == [
        ("subscription_create", 7000, invoices[0].period_start, end),
        ("subscription_update", 2000, end, end + WEEK),
        ("subscription_cycle", 2000, end + WEEK, end + 2 * WEEK),
    ]


def test_same_interval_phase_swaps_the_price_for_the_renewal(emulator):
    clock, _, sub = _active(_price(3000))
    end = sub["items"].data[0].current_period_end
    dearer = _price(5000)
    _schedule_change(sub, dearer)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end + PAID)
    after = stripe.Subscription.retrieve(sub.id)
    assert after["items"].data[0].price.id == dearer.id and after.billing_cycle_anchor == sub.billing_cycle_anchor
    assert [(i.billing_reason, i.amount_paid) for i in _invoices(sub.id)] == [
        ("subscription_create", 3000),
        ("subscription_cycle", 5000),
    ]


def test_release_keeps_the_subscription_as_it_is_and_cancel_cancels_it(emulator):
    clock, _, sub = _active(_price(3000))
    sched = _schedule_change(sub, _price(7000, "month"))
    released = stripe.SubscriptionSchedule.release(sched.id)
    assert released.status == "released" and released.released_subscription == sub.id
    assert released.released_at and released.current_phase is None
    assert stripe.Subscription.retrieve(sub.id).schedule is None
    with pytest.raises(stripe.InvalidRequestError):
        stripe.SubscriptionSchedule.release(sched.id)
    end = sub["items"].data[0].current_period_end
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=end + PAID)
    assert [(i.billing_reason, i.amount_paid) for i in _invoices(sub.id)][-1] == ("subscription_cycle", 3000)
    # once released, cancellation is the subscription's again
    assert stripe.Subscription.modify(sub.id, cancel_at_period_end=True).cancel_at_period_end

    _, _, other = _active(_price(3000))
    sched = _schedule_change(other, _price(7000, "month"))
    canceled = stripe.SubscriptionSchedule.cancel(sched.id)
    assert canceled.status == "canceled" and canceled.canceled_at
    assert stripe.Subscription.retrieve(other.id).status == "canceled"
    # cancelling the subscription itself cancels its schedule
    _, _, third = _active(_price(3000))
    sched = _schedule_change(third, _price(7000, "month"))
    stripe.Subscription.cancel(third.id)
    assert stripe.SubscriptionSchedule.retrieve(sched.id).status == "canceled"
    assert "subscription_schedule.canceled" in _types()


def test_plain_update_to_another_interval_resets_the_anchor_now_and_invoices_at_once(emulator):
    clock, _, sub = _active(_price(3000, "week"))
    half = clock.frozen_time + WEEK // 2
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=half)
    monthly = _price(7000, "month")
    after = stripe.Subscription.modify(sub.id, items=[{"id": sub["items"].data[0].id, "price": monthly.id}])
    item = after["items"].data[0]
    assert after.billing_cycle_anchor == half and item.current_period_start == half
    assert item.price.id == monthly.id
    inv = stripe.Invoice.retrieve(after.latest_invoice)
    # half a week unused at 30.00 credited, the new month charged in full
    assert inv.billing_reason == "subscription_update" and inv.status == "paid"
    assert [(ln.amount, ln.parent.subscription_item_details.proration) for ln in inv.lines.data] == [
        (-1500, True),
        (7000, False),
    ]
    assert inv.amount_paid == 5500
    # then it renews monthly from the new anchor
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=item.current_period_end + PAID)
    assert [(i.billing_reason, i.amount_paid, i.period_start) for i in _invoices(sub.id)][-1] == (
        "subscription_cycle",
        7000,
        item.current_period_end,
    )


@pytest.mark.skipif(not os.path.exists(FIXTURES), reason="fixtures3.json not available")
def test_schedule_shape_matches_the_fixture(emulator):
    with open(FIXTURES) as f:
        res = json.load(f)["resources"]
    _, _, sub = _active(_price())
    sched = _schedule_change(sub, _price(7000, "month")).to_dict()
    assert set(sched) == set(res["subscription_schedule"])
    assert set(sched["phases"][0]) == set(res["subscription_schedule"]["phases"][0])
    assert set(sched["phases"][0]["items"][0]) == set(res["subscription_schedule"]["phases"][0]["items"][0])
    assert set(sched["default_settings"]) == set(res["subscription_schedule"]["default_settings"])
