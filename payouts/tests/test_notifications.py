"""Payouts' notifications to the listener: payout sent, payout failed, account restricted."""

import time

import pytest
from django.core import mail

from payouts import services
from payouts.models import Payout
from payouts.notifications import account_restricted_task, payout_failed_task, payout_sent_task, payouts_sent_task
from payouts.periods import period_parse
from payouts.tests.conftest import at
from payouts.tests.factories import ListenerPayoutFactory, PayoutFactory, StripeListenerAccountFactory
from web.tests.support import eventually

W45 = period_parse("weekly", "2026-W45")


pytestmark = pytest.mark.usefixtures("fresh_notifications")


def _wait_for_mail(count: int) -> None:
    eventually(lambda: len(mail.outbox) >= count, 10, f"{count} notification mail(s)")


@pytest.mark.django_db
def test_payout_sent_tells_the_listener_once():
    payout = PayoutFactory(status=Payout.Status.PAID, stripe_transfer_id="tr_1", amount=2700)
    assert payout_sent_task.run(payout.pk) is True
    assert payout_sent_task.run(payout.pk) is False
    [message] = mail.outbox
    assert message.to == [payout.listener.email] and "27.00 USD" in message.subject and "tr_1" in message.body


@pytest.mark.django_db
def test_a_payout_not_paid_sends_no_payout_sent():
    payout = PayoutFactory(status=Payout.Status.PROCESSING)
    assert payout_sent_task.run(payout.pk) is False and mail.outbox == []


@pytest.mark.django_db
def test_a_batch_of_payouts_sent_mails_each_paid_one_once():
    paid = [PayoutFactory(status=Payout.Status.PAID, stripe_transfer_id=f"tr_{i}", amount=2700) for i in range(3)]
    processing = PayoutFactory(status=Payout.Status.PROCESSING)
    assert payout_sent_task.run(paid[0].pk) is True  # already told, e.g. by a first delivery of the message
    assert payouts_sent_task.run([p.pk for p in paid] + [processing.pk]) == 2
    assert payouts_sent_task.run([p.pk for p in paid]) == 0
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.listener.email for p in paid)


@pytest.mark.django_db
def test_payout_failed_tells_the_listener_their_earnings_are_safe():
    payout = PayoutFactory(status=Payout.Status.FAILED, failure_reason="insufficient_funds", attempts=1)
    assert payout_failed_task.run(payout.pk) is True
    [message] = mail.outbox
    assert message.to == [payout.listener.email] and "27.00 USD" in message.body and "safe" in message.body
    assert "insufficient_funds" not in message.body  # the platform's balance is not the listener's business


@pytest.mark.django_db
def test_account_restricted_tells_the_listener_what_to_do():
    account = StripeListenerAccountFactory(payouts_enabled=False, disabled_reason="requirements.past_due")
    assert account_restricted_task.run(account.pk) is True
    [message] = mail.outbox
    assert message.to == [account.listener.email] and "requirements.past_due" in message.body
    assert "onboarding" in message.body


@pytest.mark.django_db
def test_transfers_paused_by_stripe_tell_the_listener_why_though_payouts_are_enabled():
    account = StripeListenerAccountFactory(transfers_capability="pending", transfers_capability_reason="pending.review")
    assert account_restricted_task.run(account.pk) is True
    [message] = mail.outbox
    assert "paused receiving transfers" in message.body and "pending.review" in message.body


@pytest.mark.django_db
def test_an_account_that_can_receive_payouts_gets_no_restriction_mail():
    account = StripeListenerAccountFactory(payouts_enabled=True)
    assert account_restricted_task.run(account.pk) is False and mail.outbox == []


def test_a_paid_payout_run_mails_each_listener_through_the_worker(celery_worker, connected_listener, fund_platform):
    fund_platform()
    listeners = [connected_listener() for _ in range(2)]
    for listener in listeners:
        ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    services.payout_run(period=W45)
    _wait_for_mail(2)
    time.sleep(0.3)  # nothing more comes
    assert sorted((m.to, m.subject) for m in mail.outbox) == sorted(
        ([listener.email], "Talkpay payout sent: 27.00 USD") for listener in listeners
    )


def test_a_failed_payout_mails_the_listener_through_the_worker(
    celery_worker, connected_listener, fund_platform, stripe_emulator
):
    # Stripe restricted the account before we heard about it, so the transfer is refused
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    stripe_emulator.post(f"/_emulator/accounts/{listener.stripe_listener_account.stripe_account_id}/restrict")
    services.payout_run(period=W45)
    assert Payout.objects.get(listener=listener).status == Payout.Status.FAILED
    # the refusal had the account read back from Stripe: the listener also learns what to do about it
    _wait_for_mail(2)
    time.sleep(0.3)  # nothing more comes
    assert sorted((m.to, m.subject) for m in mail.outbox) == [
        ([listener.email], "Talkpay payout delayed"),
        ([listener.email], "Talkpay: action needed to keep receiving payouts"),
    ]


def test_an_account_losing_payouts_mails_the_listener(celery_worker, connected_listener):
    listener = connected_listener()
    account = listener.stripe_listener_account
    # Stripe restricts the account: account.updated with payouts disabled
    services.connect_account_sync(
        account={
            "id": account.stripe_account_id,
            "payouts_enabled": False,
            "charges_enabled": True,
            "details_submitted": True,
            "requirements": {"disabled_reason": "requirements.past_due", "past_due": ["external_account"]},
        },
        event_created=int(time.time()) + 10,
    )
    _wait_for_mail(1)
    [message] = mail.outbox
    assert message.to == [listener.email] and "requirements.past_due" in message.body
