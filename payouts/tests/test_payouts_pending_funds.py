"""Payout runs under Stripe's pending funds (the emulator's default, as on Stripe): a charge's funds are
available only days later, so a run pays what the available balance covers and defers the rest
(PENDING, with the reason), and a later run pays it once the funds are available."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command

from billing.invariants import CHECKS as BILLING_CHECKS
from billing.stripe_gateway import client
from payouts import services
from payouts.invariants import CHECKS as PAYOUT_CHECKS
from payouts.models import Clawback, ClawbackRecovery, Payout
from payouts.periods import period_parse
from payouts.services.transfers import DEFERRED
from payouts.tests.conftest import at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory, PayoutFactory

pytestmark = pytest.mark.django_db

W45 = period_parse("weekly", "2026-W45")
W46 = period_parse("weekly", "2026-W46")
TWO_DAYS = 2 * 86400


def charge(amount: int, payment_method: str = "pm_card_visa") -> None:
    """A talker's card payment on Stripe: its funds are pending for two days (the bypass card: at once)."""
    client().v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": payment_method,
            "allowed_payment_method_types": ["card"],
            "confirm": True,
        }
    )


def available() -> int:
    return client().v1.balance.retrieve().available[0].amount


def problems() -> list[str]:
    return [problem for check in (*BILLING_CHECKS, *PAYOUT_CHECKS) for problem in check()]


def paid_on_stripe() -> int:
    return sum(t["amount"] for t in stripe_transfers())


def paid_here() -> int:
    return sum(Payout.objects.filter(status=Payout.Status.PAID).values_list("amount", flat=True))


@pytest.fixture
def three_listeners(connected_listener):
    """Three listeners with 27.00 each earned in week 45."""
    listeners = [connected_listener() for _ in range(3)]
    for listener in listeners:
        ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    return listeners


def test_a_run_pays_what_is_available_and_the_next_run_pays_the_rest_once_funds_are_available(
    three_listeners, stripe_emulator, api_client
):
    # given 33.68 available (a 35.00 charge on the bypass card) and 96.80 still pending (a 100.00 charge)
    charge(3500, "pm_card_bypassPending")
    charge(10000)
    assert available() == 3368

    # when week 45 is run
    summary = services.payout_run(period=W45)

    # then one payout of 27.00 is paid; the two that do not fit wait, with the reason, and reached no Stripe call
    assert (summary.paid, summary.deferred, summary.failed, summary.amount_deferred) == (1, 2, 0, 5400)
    deferred = Payout.objects.filter(status=Payout.Status.PENDING)
    assert deferred.count() == 2
    for payout in deferred:
        assert payout.failure_reason.startswith(DEFERRED) and "pending on Stripe" in payout.failure_reason
        assert payout.attempts == 0 and payout.amount == 2700 and payout.earnings.count() == 1
    assert paid_on_stripe() == paid_here() == 2700 and available() == 668
    assert problems() == []
    # and operators see it in the metrics
    metrics = api_client.get("/api/metrics/").content.decode()
    assert re.search(r"^talkpay_payouts_deferred 2\.0$", metrics, re.M)

    # when the run is repeated before the funds are available, nothing changes
    assert services.payout_run(period=W45).deferred == 2
    assert paid_on_stripe() == 2700

    # when two days pass on Stripe and the next week's run comes
    stripe_emulator.advance_clock(TWO_DAYS)
    assert available() == 668 + 9680
    summary = services.payout_run(period=W46)

    # then the deferred payouts of week 45 are paid, once each, and our books agree with Stripe's
    assert (summary.paid, summary.deferred) == (2, 0)
    assert set(Payout.objects.values_list("status", flat=True)) == {Payout.Status.PAID}
    assert not Payout.objects.exclude(failure_reason="").exists()
    assert paid_on_stripe() == paid_here() == 8100 and len(stripe_transfers()) == 3
    assert available() == 668 + 9680 - 5400
    assert problems() == []


def test_a_transfer_stripe_refuses_for_want_of_funds_is_deferred_not_failed(connected_listener, stripe_emulator):
    # given a listener owed 27.00 and only pending funds, and a balance Talkpay cannot read (so the bound
    # is left to Stripe, as when another run spends the balance between the read and the transfer)
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    charge(10000)
    stripe_emulator.fault("500", count=10, path_prefix="/v1/balance")

    # when week 45 is run, then Stripe refuses the transfer with balance_insufficient: the payout waits
    summary = services.payout_run(period=W45)
    stripe_emulator.clear_faults()
    payout = Payout.objects.get(listener=listener)
    assert (summary.deferred, summary.failed) == (1, 0)
    assert payout.status == Payout.Status.PENDING and "balance_insufficient" in payout.failure_reason
    assert payout.attempts == 1 and stripe_transfers() == [] and problems() == []

    # when the funds become available, the sweeper (or the next run) sends it with a new idempotency key
    stripe_emulator.advance_clock(TWO_DAYS)
    services.payouts_sweep_stuck(older_than=timedelta(0))
    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == (Payout.Status.PAID, 2)
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700] and problems() == []


def test_run_payouts_says_what_was_deferred_and_why(three_listeners, stripe_emulator):
    charge(10000)  # pending: nothing can be paid yet
    out = io.StringIO()
    call_command("run_payouts", "--schedule", "weekly", "--period", "2026-W45", stdout=out)
    text = out.getvalue()
    assert re.search(r"deferred \(Stripe funds not available yet\)\s+3", text)
    assert len(re.findall(r"^payout #\d+ deferred: the platform's available Stripe balance", text, re.M)) == 3
    assert paid_on_stripe() == 0 and problems() == []


def test_a_deferred_payout_owes_its_netted_debt_again_and_nets_it_once_when_paid(connected_listener, stripe_emulator):
    # given a listener who owes 10.00 from a clawback Stripe could not reverse, earned 27.00 in week 45,
    # and a platform whose only funds are pending
    listener = connected_listener()
    old_earning = ListenerPayoutFactory(listener=listener, completed_at=at("2026-10-01 10:00"), status="paid")
    old_payout = PayoutFactory(listener=listener, status=Payout.Status.PAID, stripe_transfer_id="tr_old")
    debt = Clawback.objects.create(
        key="refund-test", listener=listener, earning=old_earning, payout=old_payout, amount=1000, status="debt"
    )
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    charge(10000)

    # when week 45 is run, then the payout waits at its gross amount and the debt is owed again, whole
    services.payout_run(period=W45)
    payout = Payout.objects.get(listener=listener, period_start=W45.start)
    debt.refresh_from_db()
    assert (payout.status, payout.amount) == (Payout.Status.PENDING, 2700)
    assert (debt.status, debt.amount_recovered) == (Clawback.Status.DEBT, 0)
    assert not ClawbackRecovery.objects.exists()

    # when the funds are available and the run is repeated, then 17.00 is sent and the debt recovered once
    stripe_emulator.advance_clock(TWO_DAYS)
    services.payout_run(period=W45)
    services.payout_run(period=W45)
    assert [t["amount"] for t in stripe_transfers(listener)] == [1700]
    debt.refresh_from_db()
    assert (debt.status, debt.amount_recovered) == (Clawback.Status.RECOVERED, 1000)
    assert ClawbackRecovery.objects.get().amount == 1000
