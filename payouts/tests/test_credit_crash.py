"""A crash between Stripe's answer and our save, for a payout that carries a ListenerCredit (money given
back to the listener after a refund failed): the credit is paid once, by the transfer Stripe already made."""

import pytest

from billing import ledger
from billing.tests.refund_support import complete_session, connected_listener, paid_booking, payment_of
from payouts import services
from payouts.models import Clawback, ListenerCredit, Payout
from payouts.services import transfers
from payouts.tests import test_issue10_payout_races as races
from payouts.tests.conftest import stripe_transfers

pytestmark = pytest.mark.django_db

events = races.events


def test_a_crash_after_stripe_paid_a_credit_makes_no_second_transfer_and_pays_the_credit_once(
    stripe_emulator, events, monkeypatch, settings
):
    from billing.stripe_gateway import connect as gateway

    # given a listener owed 45.00 again: paid out, clawed back by a refund, and the refund then failed
    listener = connected_listener(stripe_emulator)
    booking = complete_session(paid_booking(events, price="50.00", listener=listener))
    races._collect(stripe_emulator)
    races._execute()
    refund = races._refund(payment_of(booking), 5000, events)
    assert services.clawback_execute(clawback_id=Clawback.objects.get().pk).status == Clawback.Status.REVERSED
    events.deliver_new()
    stripe_emulator.post(f"/_emulator/refunds/{refund.stripe_refund_id}/fail", {})
    events.deliver_new()
    credit = ListenerCredit.objects.get()
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 4500

    # when next week's run crashes right after Stripe accepted the credit's transfer, before we saved it
    record = transfers.payouts_transfer_record

    def crash_once(**kwargs):
        monkeypatch.setattr(transfers, "payouts_transfer_record", record)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(transfers, "payouts_transfer_record", crash_once)
    races._next_week_run()
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500, 4500]
    credit.refresh_from_db()
    crashed = credit.payout
    assert crashed is not None and crashed.status == Payout.Status.PROCESSING and crashed.stripe_transfer_id is None

    # and the payout is picked up again by a second run and the sweeper
    settings.PAYOUT_RESEND_AFTER_SECONDS = 0
    creates: list[dict] = []
    create = gateway.transfer_create
    monkeypatch.setattr(gateway, "transfer_create", lambda **kw: creates.append(kw) or create(**kw))
    races._next_week_run()
    services.payouts_sweep_stuck()

    # then the transfer Stripe made is recorded on the same payout, no other is made, the credit is paid once
    assert creates == []
    first_payout = Payout.objects.exclude(pk=crashed.pk).get()
    [second] = [t for t in stripe_transfers(listener) if t["id"] != first_payout.stripe_transfer_id]
    credit.refresh_from_db()
    assert credit.payout_id == crashed.pk
    crashed.refresh_from_db()
    assert (crashed.status, crashed.stripe_transfer_id, crashed.amount) == (Payout.Status.PAID, second["id"], 4500)
    assert ListenerCredit.objects.count() == 1
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    races._assert_totals_equal_stripe(listener)
