"""Payout runs against PostgreSQL and the Stripe emulator: who is paid, how much, and only once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from billing import ledger
from billing.stripe_gateway import connect as gateway
from booking.models import Booking
from payouts import selectors, services
from payouts.models import ListenerPayout, Payout, Schedule, StripeListenerAccount
from payouts.periods import period_parse
from payouts.tests.conftest import account_updated_from_stripe, at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory

pytestmark = pytest.mark.django_db

W45 = period_parse(Schedule.WEEKLY, "2026-W45")  # Mon 2 .. Sun 8 November 2026
W46 = period_parse(Schedule.WEEKLY, "2026-W46")
OCTOBER = period_parse(Schedule.MONTHLY, "2026-10")


def earnings(listener, when: str, count: int = 1) -> list[ListenerPayout]:
    return [ListenerPayoutFactory(listener=listener, completed_at=at(when)) for _ in range(count)]


def test_a_weekly_listener_is_paid_once_per_week_what_that_week_earned(connected_listener, fund_platform):
    # given a listener with three sessions in week 45 and one in week 46 (27.00 each to them)
    fund_platform()
    listener = connected_listener()
    earnings(listener, "2026-11-04 10:00", count=3)
    earnings(listener, "2026-11-11 10:00")

    # when each week is run, and each run is repeated
    services.payout_run(period=W45)
    services.payout_run(period=W45)
    services.payout_run(period=W46)
    services.payout_run(period=W46)

    # then Stripe holds one transfer per week, of that week's amount, to the listener's account
    transfers = stripe_transfers(listener)
    assert sorted(t["amount"] for t in transfers) == [2700, 8100]
    payouts = {p.period_start: p for p in Payout.objects.filter(listener=listener)}
    assert payouts[W45.start].amount == 8100 and payouts[W46.start].amount == 2700
    assert {p.status for p in payouts.values()} == {Payout.Status.PAID}
    assert {t["id"] for t in transfers} == {p.stripe_transfer_id for p in payouts.values()}
    assert {t["transfer_group"] for t in transfers} == {f"payout-{p.pk}" for p in payouts.values()}
    assert not ListenerPayout.objects.filter(listener=listener).exclude(status=ListenerPayout.Status.PAID).exists()
    # and the ledger no longer owes the listener anything
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0


def test_a_monthly_listener_is_paid_once_a_month_and_not_by_weekly_runs(connected_listener, fund_platform):
    # given a monthly listener with sessions on 5 and 20 October and on 3 November
    fund_platform()
    listener = connected_listener(schedule=Schedule.MONTHLY)
    earnings(listener, "2026-10-05 10:00")
    earnings(listener, "2026-10-20 10:00")
    earnings(listener, "2026-11-03 10:00")

    # when the weekly runs of those weeks and the October run (twice) happen
    for week in ("2026-W41", "2026-W43", "2026-W45"):
        services.payout_run(period=period_parse(Schedule.WEEKLY, week))
    services.payout_run(period=OCTOBER)
    services.payout_run(period=OCTOBER)

    # then October is paid once, with October's sessions only
    assert [t["amount"] for t in stripe_transfers(listener)] == [5400]
    payout = Payout.objects.get(listener=listener)
    assert (payout.schedule, payout.period_start, payout.period_end) == (Schedule.MONTHLY, OCTOBER.start, OCTOBER.end)
    assert ListenerPayout.objects.get(listener=listener, payout__isnull=True).payable_at == at("2026-11-03 10:00")


def test_a_balance_below_the_minimum_rolls_over_to_the_next_period(connected_listener, fund_platform):
    # given a listener whose minimum payout is 50.00 and who earned 27.00 in week 45
    fund_platform()
    listener = connected_listener(minimum=5000)
    earnings(listener, "2026-11-04 10:00")

    # when week 45 is run, then nothing is paid
    summary = services.payout_run(period=W45)
    assert summary.rolled_over == 1
    assert stripe_transfers(listener) == []
    assert not Payout.objects.filter(listener=listener).exists()

    # when week 46 adds another 27.00 and is run, then both are paid in one transfer
    earnings(listener, "2026-11-12 10:00")
    services.payout_run(period=W46)
    assert [t["amount"] for t in stripe_transfers(listener)] == [5400]
    assert Payout.objects.get(listener=listener).earnings.count() == 2


def test_a_listener_whose_account_cannot_receive_payouts_accrues_and_is_paid_after_onboarding(
    connected_listener, fund_platform, stripe_emulator
):
    # given a listener who has not finished onboarding, with 27.00 earned in week 45
    fund_platform()
    listener = connected_listener(onboard=False)
    earnings(listener, "2026-11-04 10:00")

    # when week 45 is run, then nothing is sent and the earning is visibly held
    services.payout_run(period=W45)
    assert stripe_transfers(listener) == []
    held = selectors.earnings_held_for_listener(listener_id=listener.pk)
    assert held == {"reasons": ["connect_account_not_ready"], "held_amount": 2700, "disputed_amount": 0}

    # when the listener completes onboarding on Stripe and account.updated arrives
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    assert account_updated_from_stripe(account_id) == "processed"

    # then the next run pays what accrued, once
    services.payout_run(period=W45)
    services.payout_run(period=W46)
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert selectors.earnings_held_for_listener(listener_id=listener.pk)["reasons"] == []


def test_refunded_disputed_and_operator_held_earnings_are_not_paid(connected_listener, fund_platform):
    # given a refunded session, a disputed one, a listener held by an operator, and one normal session
    fund_platform()
    listener = connected_listener()
    refunded = earnings(listener, "2026-11-04 10:00")[0]
    Booking.objects.filter(pk=refunded.booking_id).update(status=Booking.Status.REFUNDED)
    ListenerPayout.objects.filter(pk=refunded.pk).update(status=ListenerPayout.Status.CANCELLED, amount_reversed=2700)
    disputed = earnings(listener, "2026-11-04 11:00")[0]
    ListenerPayout.objects.filter(pk=disputed.pk).update(status=ListenerPayout.Status.HELD)
    earnings(listener, "2026-11-04 12:00")
    held_listener = connected_listener()
    earnings(held_listener, "2026-11-04 10:00")
    services.listener_payouts_hold(listener_id=held_listener.pk, reason="KYC review")

    # when week 45 is run
    services.payout_run(period=W45)

    # then only the normal session is paid, and the held listener gets nothing until released
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert stripe_transfers(held_listener) == []
    services.listener_payouts_release(listener_id=held_listener.pk)
    services.payout_run(period=W45)
    assert [t["amount"] for t in stripe_transfers(held_listener)] == [2700]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_five_concurrent_runs_of_one_period_make_one_transfer_per_listener(connected_listener, fund_platform):
    # given eight listeners with two sessions each in week 45
    fund_platform()
    listeners = [connected_listener() for _ in range(8)]
    for listener in listeners:
        earnings(listener, "2026-11-04 10:00", count=2)

    # when five runs of week 45 start at the same moment
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            services.payout_run(period=W45, batch_size=3)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # then each listener got exactly one transfer of 54.00
    assert errors == []
    transfers = stripe_transfers()
    assert sorted(t["destination"] for t in transfers) == sorted(
        listener.stripe_listener_account.stripe_account_id for listener in listeners
    )
    assert {t["amount"] for t in transfers} == {5400}
    assert Payout.objects.filter(status=Payout.Status.PAID).count() == 8


def test_a_crash_between_stripes_answer_and_our_save_makes_no_second_transfer(
    connected_listener, fund_platform, monkeypatch, settings
):
    # given a run that crashes right after Stripe accepted the transfer, before we saved it
    fund_platform()
    listener = connected_listener()
    earnings(listener, "2026-11-04 10:00", count=2)
    from payouts.services import transfers

    record = transfers.payouts_transfer_record

    def crash_once(**kwargs):
        monkeypatch.setattr(transfers, "payouts_transfer_record", record)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(transfers, "payouts_transfer_record", crash_once)
    summary = services.payout_run(period=W45)
    assert summary.errors == 1
    payout = Payout.objects.get(listener=listener)
    assert payout.status == Payout.Status.PROCESSING and payout.stripe_transfer_id is None
    assert len(stripe_transfers(listener)) == 1

    # when the payout is picked up again (past the resend delay, as after Stripe's idempotency window)
    settings.PAYOUT_RESEND_AFTER_SECONDS = 0
    creates: list[dict] = []
    create = gateway.transfer_create
    monkeypatch.setattr(gateway, "transfer_create", lambda **kw: creates.append(kw) or create(**kw))
    services.payout_run(period=W45)
    services.payouts_sweep_stuck()

    # then the transfer Stripe already made is recorded, found by its transfer group, and none is created
    assert creates == []
    [transfer] = stripe_transfers(listener)
    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer_id, payout.amount) == (Payout.Status.PAID, transfer["id"], 5400)
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0


def test_a_payout_the_available_balance_cannot_cover_waits_and_the_next_run_pays_it_once(
    connected_listener, fund_platform
):
    # given an empty platform balance and a listener who earned 27.00 in week 45
    listener = connected_listener()
    earnings(listener, "2026-11-04 10:00")

    # when week 45 is run, then the payout waits (not failed), with the reason, and keeps its earning
    summary = services.payout_run(period=W45)
    assert (summary.deferred, summary.failed) == (1, 0)
    waiting = Payout.objects.get(listener=listener)
    assert waiting.status == Payout.Status.PENDING
    assert "available Stripe balance" in waiting.failure_reason
    assert ListenerPayout.objects.get(listener=listener).payout == waiting
    assert stripe_transfers(listener) == []

    # when the balance is topped up and the next week is run (with 27.00 more), twice
    fund_platform()
    earnings(listener, "2026-11-11 10:00")
    services.payout_run(period=W46)
    services.payout_run(period=W46)

    # then each week's payout is paid once
    assert sorted(t["amount"] for t in stripe_transfers(listener)) == [2700, 2700]
    assert set(Payout.objects.filter(listener=listener).values_list("status", flat=True)) == {Payout.Status.PAID}
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0


def test_rerunning_a_failed_period_retries_its_payout_with_a_new_attempt(
    connected_listener, fund_platform, stripe_emulator
):
    # given week 45's payout failed: Stripe restricted the account before we heard about it
    fund_platform()
    listener = connected_listener()
    earnings(listener, "2026-11-04 10:00")
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/restrict")
    services.payout_run(period=W45)
    assert Payout.objects.get(listener=listener).status == Payout.Status.FAILED

    # and the refusal had us read the account back from Stripe: restricted, so the runs hold it
    assert StripeListenerAccount.objects.get(listener=listener).transfers_capability == "inactive"

    # when the account is fixed (Stripe tells us with account.updated) and week 45 is run again
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    assert account_updated_from_stripe(account_id) == "processed"
    services.payout_run(period=W45)

    # then the same payout is paid, on its second attempt, once
    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.attempts, payout.failure_reason) == (Payout.Status.PAID, 2, "")
    assert [t["id"] for t in stripe_transfers(listener)] == [payout.stripe_transfer_id]


def test_a_restricted_account_fails_the_payout_with_stripes_reason(connected_listener, fund_platform, stripe_emulator):
    # given a listener whose account Stripe restricted before we heard about it
    fund_platform()
    listener = connected_listener()
    earnings(listener, "2026-11-04 10:00")
    stripe_emulator.post(f"/_emulator/accounts/{listener.stripe_listener_account.stripe_account_id}/restrict")

    # when week 45 is run
    services.payout_run(period=W45)

    # then the payout failed, naming the capability, and the earning waits for the next run
    payout = Payout.objects.get(listener=listener)
    assert payout.status == Payout.Status.FAILED
    assert "insufficient_capabilities_for_transfer" in payout.failure_reason
    assert ListenerPayout.objects.get(listener=listener).status == ListenerPayout.Status.PAYABLE


def test_a_clawback_debt_is_netted_out_of_the_next_transfer(connected_listener, fund_platform):
    # given a listener who owes 10.00 from a clawback Stripe could not reverse, and earned 27.00 in week 45
    from payouts.models import Clawback
    from payouts.tests.factories import PayoutFactory

    fund_platform()
    listener = connected_listener()
    old_earning = ListenerPayoutFactory(listener=listener, completed_at=at("2026-10-01 10:00"), status="paid")
    old_payout = PayoutFactory(listener=listener, status=Payout.Status.PAID, stripe_transfer_id="tr_old")
    debt = Clawback.objects.create(
        key="refund-test", listener=listener, earning=old_earning, payout=old_payout, amount=1000, status="debt"
    )
    earnings(listener, "2026-11-04 10:00")

    # when week 45 is run
    services.payout_run(period=W45)

    # then 17.00 is transferred and the debt is recovered
    assert [t["amount"] for t in stripe_transfers(listener)] == [1700]
    debt.refresh_from_db()
    assert (debt.status, debt.amount_recovered) == (Clawback.Status.RECOVERED, 1000)


def test_after_downtime_the_next_run_pays_the_missed_weeks_once(connected_listener, fund_platform):
    # given earnings in weeks 44 and 45 and no run for either (beat was down)
    fund_platform()
    listener = connected_listener()
    earnings(listener, "2026-10-28 10:00")
    earnings(listener, "2026-11-04 10:00")

    # when the run for the last closed week (45) happens, and then the missed week 44 is run late
    services.payout_run(period=W45)
    services.payout_run(period=period_parse(Schedule.WEEKLY, "2026-W44"))

    # then both weeks were paid in week 45's payout, once
    assert [t["amount"] for t in stripe_transfers(listener)] == [5400]
    assert Payout.objects.get(listener=listener).period_start == W45.start
