"""ledger_check's comparison of our invoices with Stripe's is incremental: after a first full pass it reads
only what changed since (Stripe's invoice events, our changed rows), and still catches a mismatch."""

import pytest

from billing.stripe_gateway import client
from billing.stripe_gateway import subscriptions as gateway
from subscriptions import invariants
from subscriptions.models import SubscriptionInvoice
from subscriptions.tests.conftest import WEEK, subscribed_and_paid
from web.tests.factories import ListenerFactory
from web.tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def stripe_reads(monkeypatch):
    """How many subscription lists and invoice reads the check asks of Stripe."""
    reads = {"lists": 0, "retrieves": 0}
    listing, retrieving = gateway.invoices_list_for_subscription, gateway.invoice_retrieve

    def counted_list(*args, **kwargs):
        reads["lists"] += 1
        return listing(*args, **kwargs)

    def counted_retrieve(*args, **kwargs):
        reads["retrieves"] += 1
        return retrieving(*args, **kwargs)

    monkeypatch.setattr(gateway, "invoices_list_for_subscription", counted_list)
    monkeypatch.setattr(gateway, "invoice_retrieve", counted_retrieve)
    return reads


def test_after_a_full_pass_only_changed_invoices_are_read_and_a_mismatch_is_still_caught(
    wired, talker_on_clock, plan, listener, stripe_reads
):
    # given two paid subscriptions, and a first (full) pass that finds them in agreement
    weekly = plan("week", "30.00")
    talker = talker_on_clock()
    first = subscribed_and_paid(talker, listener, weekly, wired)
    subscribed_and_paid(talker_on_clock(), ListenerFactory(password=None), weekly, wired)
    assert invariants.invoices_agree_with_stripe() == []
    assert stripe_reads["lists"] == 2

    # when nothing changes in between, then a later pass lists nothing per subscription
    stripe_reads.update(lists=0, retrieves=0)
    assert invariants.invoices_agree_with_stripe() == []
    assert stripe_reads["lists"] == 0
    assert stripe_reads["retrieves"] <= 2  # at most the invoices of the cursor's 10-minute margin

    # when our row of the first invoice says something Stripe does not, then the next pass reports it
    row = SubscriptionInvoice.objects.get(subscription=first)
    row.amount_paid = 1
    row.save()
    problems = invariants.invoices_agree_with_stripe()
    assert problems == [f"invoice {row.stripe_invoice_id}: ours paid 1, Stripe's paid 3000"]
    # and again on the pass after (a failed pass does not move the cursor)
    assert invariants.invoices_agree_with_stripe() == problems
    row.amount_paid = 3000
    row.save()
    assert invariants.invoices_agree_with_stripe() == []

    # when Stripe renews the first subscription while its events are lost (no endpoint listens any more),
    # then the next pass reads the renewal invoice from Stripe and reports it paid but not recorded
    for endpoint in client().v1.webhook_endpoints.list().data:
        client().v1.webhook_endpoints.delete(endpoint.id)
    stripe_reads.update(lists=0, retrieves=0)
    clock = talker.clock
    client().v1.test_helpers.test_clocks.advance(clock["id"], params={"frozen_time": talker.started + WEEK + 7200})
    eventually(lambda: client().v1.test_helpers.test_clocks.retrieve(clock["id"]).status == "ready", what="clock ready")
    [renewal] = [
        i
        for i in gateway.invoices_list_for_subscription(first.stripe_subscription_id)
        if i["status"] == "paid" and i["billing_reason"] == "subscription_cycle"
    ]
    stripe_reads.update(lists=0, retrieves=0)
    problems = invariants.invoices_agree_with_stripe()
    assert problems == [f"Stripe invoice {renewal['id']} of subscription {first.pk} paid but not recorded"]
    assert stripe_reads["lists"] == 0 and stripe_reads["retrieves"] >= 1
