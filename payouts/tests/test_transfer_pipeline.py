"""A payout run's transfers go through payouts.services.transfers.TransferPipeline: one batch's
transfers in flight while the next is claimed, Stripe's available balance read once and tracked, read
again (with nothing in flight) before anything is deferred."""

from __future__ import annotations

import pytest

from billing import ledger
from billing.stripe_gateway import connect as gateway
from payouts import services
from payouts.models import Payout
from payouts.periods import period_parse
from payouts.services import runs
from payouts.tests.conftest import at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory

pytestmark = pytest.mark.django_db

W45 = period_parse("weekly", "2026-W45")


class BalanceReads(list):
    """The run's reads of the available balance; each of `hooks` runs after a read (funds arriving)."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list = []


@pytest.fixture
def balance_reads(monkeypatch):
    reads = BalanceReads()
    read = gateway.platform_balance_available

    def counted():
        balance = read()
        reads.append(dict(balance))  # as Stripe answered (the run takes from what it was given)
        for hook in reads.hooks:
            hook(len(reads))
        return balance

    monkeypatch.setattr(gateway, "platform_balance_available", counted)
    return reads


def listeners_with_an_earning(connected_listener, count: int) -> list:
    listeners = [connected_listener() for _ in range(count)]
    for listener in listeners:
        ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))  # 27.00 to them
    return listeners


def test_the_run_reads_the_balance_once_and_defers_only_after_reading_it_again(
    connected_listener, fund_platform, balance_reads, monkeypatch
):
    # given four listeners owed 27.00 each, a balance for three of them, and one payout per batch
    monkeypatch.setattr(runs, "EXECUTE_BATCH", 1)
    listeners_with_an_earning(connected_listener, 4)
    fund_platform(3 * 2700)

    summary = services.payout_run(period=W45)

    # then three are paid from one read, tracked batch after batch; the fourth, which the tracked
    # balance cannot cover, is deferred only after a second read (nothing in flight) says the same
    assert (summary.paid, summary.deferred, summary.failed, summary.errors) == (3, 1, 0, 0)
    assert [read["usd"] for read in balance_reads] == [3 * 2700, 0]
    *paid, deferred = Payout.objects.select_related("listener").order_by("pk")  # oldest first
    assert [p.status for p in paid] == [Payout.Status.PAID] * 3
    assert all(len(stripe_transfers(p.listener)) == 1 for p in paid) and stripe_transfers(deferred.listener) == []
    assert deferred.status == Payout.Status.PENDING and "available Stripe balance" in deferred.failure_reason
    assert all(ledger.balance(ledger.listener_payable(p.listener_id)) == 0 for p in paid)


def test_funds_that_became_available_during_the_run_are_used_before_deferring(
    connected_listener, fund_platform, balance_reads, monkeypatch
):
    # given two listeners owed 27.00 each and a balance for one; more funds arrive after the first read
    monkeypatch.setattr(runs, "EXECUTE_BATCH", 1)
    listeners = listeners_with_an_earning(connected_listener, 2)
    fund_platform(2700)
    balance_reads.hooks.append(lambda n: fund_platform(2700) if n == 1 else None)

    summary = services.payout_run(period=W45)

    # then the second payout, short on the tracked balance, is paid after the balance is read again
    assert (summary.paid, summary.deferred) == (2, 0)
    assert len(balance_reads) == 2
    assert all(len(stripe_transfers(listener)) == 1 for listener in listeners)
    assert set(Payout.objects.values_list("status", flat=True)) == {Payout.Status.PAID}
