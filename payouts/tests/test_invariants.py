import pytest

from billing.stripe_gateway import connect as gateway
from payouts import services
from payouts.invariants import CHECKS, check_transferred_within_earned, check_transfers_match_stripe
from payouts.models import Payout
from payouts.periods import period_parse
from payouts.tests.conftest import at
from payouts.tests.factories import ListenerPayoutFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_listener(connected_listener, fund_platform):
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    services.payout_run(period=period_parse("weekly", "2026-W45"))
    return listener


def test_all_checks_pass_after_a_run(paid_listener):
    assert [problem for check in CHECKS for problem in check()] == []


def test_a_transfer_on_stripe_that_we_did_not_record_is_reported(paid_listener):
    # given a second transfer for the same payout on Stripe (what a double payment would look like)
    payout = Payout.objects.get(listener=paid_listener)
    gateway.transfer_create(
        payout_id=payout.pk,
        amount=payout.amount,
        currency="usd",
        destination=paid_listener.stripe_listener_account.stripe_account_id,
        listener_id=paid_listener.pk,
        idempotency_key="duplicate-for-test",
    )

    # then the check names the payout
    problems = check_transfers_match_stripe()
    assert problems and f"payout-{payout.pk}: 2 transfers" in problems[0]


def test_paying_more_than_was_earned_is_reported(paid_listener):
    Payout.objects.filter(listener=paid_listener).update(amount=999_999)
    assert check_transferred_within_earned() == [f"listener {paid_listener.pk}: transferred 999999 > earned 2700"]
    assert any("999999 here" in problem for problem in check_transfers_match_stripe())
