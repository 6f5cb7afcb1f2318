import pytest
import requests
import stripe


def test_account_lifecycle_link_and_onboarding(emulator):
    acct = stripe.Account.create(
        type="express",
        country="US",
        email="host@example.com",
        business_type="individual",
        capabilities={"transfers": {"requested": True}},
        metadata={"host_id": "h1"},
    )
    assert acct.id.startswith("acct_") and acct.type == "express"
    assert acct.charges_enabled is False and acct.payouts_enabled is False and acct.details_submitted is False
    assert acct.requirements.currently_due and acct.capabilities.transfers == "inactive"
    link = stripe.AccountLink.create(
        account=acct.id,
        refresh_url="https://app.example/refresh",
        return_url="https://app.example/return",
        type="account_onboarding",
    )
    assert link.object == "account_link" and link.expires_at > link.created
    assert "/_emulator/onboarding/%s" % acct.id in link.url
    r = requests.get(link.url, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "https://app.example/return"
    acct = stripe.Account.retrieve(acct.id)
    assert acct.charges_enabled and acct.payouts_enabled and acct.details_submitted
    assert acct.requirements.currently_due == [] and acct.capabilities.transfers == "active"
    evts = stripe.Event.list(type="account.updated", stripe_account=acct.id).data
    assert evts and evts[0].account == acct.id
    assert evts[0].data.previous_attributes.payouts_enabled is False
    acct = stripe.Account.modify(acct.id, metadata={"tier": "pro"}, business_profile={"url": "https://h.example"})
    assert (
        acct.metadata.to_dict() == {"host_id": "h1", "tier": "pro"} and acct.business_profile.url == "https://h.example"
    )
    other = stripe.Account.create(type="custom", country="GB")
    assert other.default_currency == "gbp"
    assert [a.id for a in stripe.Account.list().data] == [other.id, acct.id]
    assert stripe.Account.delete(other.id).deleted is True
    assert [a.id for a in stripe.Account.list().data] == [acct.id]
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.AccountLink.create(
            account="acct_nope", refresh_url="https://a/r", return_url="https://a/x", type="account_onboarding"
        )
    assert ei.value.param == "account"
    # restrict helper
    r = emulator.post("/_emulator/accounts/%s/restrict" % acct.id)
    assert r["payouts_enabled"] is False and r["requirements"]["past_due"]


def test_transfers_balance_insufficient_group_lookup_and_reversals(emulator, onboarded_account):
    acct = onboarded_account
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Transfer.create(amount=1000, currency="usd", destination=acct.id)
    assert ei.value.code == "balance_insufficient" and ei.value.http_status == 400
    emulator.post("/_emulator/balance/topup", {"amount": 10000, "currency": "usd"})
    assert stripe.Balance.retrieve().available[0].amount == 10000
    tr = stripe.Transfer.create(
        amount=4000,
        currency="usd",
        destination=acct.id,
        transfer_group="booking_1",
        metadata={"booking": "1"},
        description="payout share",
    )
    assert tr.id.startswith("tr_") and tr.amount_reversed == 0 and tr.reversed is False
    stripe.Transfer.create(amount=1000, currency="usd", destination=acct.id, transfer_group="booking_2")
    assert [t.id for t in stripe.Transfer.list(transfer_group="booking_1").data] == [tr.id]
    assert stripe.Transfer.list(transfer_group="booking_404").data == []
    assert len(stripe.Transfer.list(destination=acct.id).data) == 2
    assert stripe.Balance.retrieve().available[0].amount == 5000
    assert stripe.Balance.retrieve(stripe_account=acct.id).available[0].amount == 5000
    tr = stripe.Transfer.modify(tr.id, metadata={"x": "y"})
    assert tr.metadata.to_dict() == {"booking": "1", "x": "y"}
    rev = stripe.Transfer.create_reversal(tr.id, amount=1500, metadata={"reason": "refund"})
    assert rev.id.startswith("trr_") and rev.amount == 1500 and rev.transfer == tr.id
    tr = stripe.Transfer.retrieve(tr.id)
    assert tr.amount_reversed == 1500 and tr.reversed is False and tr.reversals.data[0].id == rev.id
    assert stripe.Balance.retrieve(stripe_account=acct.id).available[0].amount == 3500
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Transfer.create_reversal(tr.id, amount=5000)
    assert ei.value.param == "amount"
    rest = stripe.Transfer.create_reversal(tr.id)
    assert rest.amount == 2500 and stripe.Transfer.retrieve(tr.id).reversed is True
    assert [r.id for r in stripe.Transfer.list_reversals(tr.id).data] == [rest.id, rev.id]
    assert stripe.Transfer.retrieve_reversal(tr.id, rev.id).amount == 1500
    types = [e.type for e in stripe.Event.list().data]
    assert types.count("transfer.created") == 2 and types.count("transfer.reversed") == 2
    assert "transfer.updated" in types


def test_reversal_fails_when_connected_balance_short(emulator, onboarded_account):
    emulator.post("/_emulator/balance/topup", {"amount": 5000})
    tr = stripe.Transfer.create(amount=3000, currency="usd", destination=onboarded_account.id)
    stripe.Payout.create(amount=2500, currency="usd", stripe_account=onboarded_account.id)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Transfer.create_reversal(tr.id, amount=1000)
    assert ei.value.code == "balance_insufficient"


@pytest.mark.parametrize("status", ["pending", "inactive", "unrequested"])
def test_a_transfer_to_an_account_whose_transfers_capability_is_not_active_is_refused_as_stripe_refuses_it(
    emulator, onboarded_account, status
):
    # given an onboarded account whose transfers capability Stripe moves on its own (payouts stay enabled)
    emulator.post("/_emulator/balance/topup", {"amount": 5000})
    cap = emulator.post(
        "/_emulator/accounts/%s/capabilities/transfers" % onboarded_account.id,
        {"status": status, "disabled_reason": "pending.review" if status == "pending" else None},
    )
    assert cap["object"] == "capability" and cap["status"] == status
    account = stripe.Account.retrieve(onboarded_account.id)
    assert account.payouts_enabled is True and account.capabilities.to_dict().get("transfers") == (
        None if status == "unrequested" else status
    )
    if status == "pending":
        assert stripe.Account.retrieve_capability(account.id, "transfers").requirements.disabled_reason == (
            "pending.review"
        )

    # when the platform transfers to it, then Stripe refuses: 400, invalid_request_error, naming the capability
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Transfer.create(amount=1000, currency="usd", destination=account.id)
    error = ei.value
    assert (error.http_status, error.code, error.param) == (400, "insufficient_capabilities_for_transfer", None)
    assert error.json_body["error"]["type"] == "invalid_request_error"
    assert error.json_body["error"]["message"] == (
        "Your destination account needs to have at least one of the following capabilities enabled: "
        "transfers, crypto_transfers, legacy_payments"
    )
    assert stripe.Transfer.list(destination=account.id).data == []

    # and the change was announced: capability.updated (with the status before) beside account.updated
    event = stripe.Event.list(type="capability.updated", stripe_account=account.id, limit=1).data[0]
    assert (event.account, event.data.object.id, event.data.object.status) == (account.id, "transfers", status)
    assert event.data.previous_attributes.status == "active"

    # when Stripe activates it again, then the same transfer goes through
    emulator.post("/_emulator/accounts/%s/capabilities/transfers" % account.id, {"status": "active"})
    assert stripe.Transfer.create(amount=1000, currency="usd", destination=account.id).amount == 1000
    assert stripe.Account.retrieve_capability(account.id, "transfers").requirements.disabled_reason is None


def test_the_capability_helper_refuses_a_status_stripe_does_not_have(emulator, onboarded_account):
    from stripe_emulator.testing import EmulatorError

    with pytest.raises(EmulatorError) as ei:
        emulator.post("/_emulator/accounts/%s/capabilities/transfers" % onboarded_account.id, {"status": "paused"})
    assert "-> 400" in str(ei.value) and "status must be one of" in str(ei.value)
    assert stripe.Account.retrieve(onboarded_account.id).capabilities.transfers == "active"


def test_transfer_destination_checks_and_source_transaction(emulator):
    pending = stripe.Account.create(type="express", capabilities={"transfers": {"requested": True}})
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=10000, currency="usd", payment_method="pm_card_visa", confirm=True
    )
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Transfer.create(amount=100, currency="usd", destination=pending.id)
    assert ei.value.code == "insufficient_capabilities_for_transfer"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Transfer.create(amount=100, currency="usd", destination="acct_nope")
    assert ei.value.code == "resource_missing" and ei.value.param == "destination"
    emulator.post("/_emulator/accounts/%s/onboard" % pending.id)
    # the platform has 9680 available; source_transaction draws on the charge itself
    tr = stripe.Transfer.create(
        amount=9000, currency="usd", destination=pending.id, source_transaction=pi.latest_charge
    )
    assert tr.source_transaction == pi.latest_charge
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Transfer.create(amount=2000, currency="usd", destination=pending.id, source_transaction=pi.latest_charge)


def test_payouts_paid_and_failed(emulator, onboarded_account, receiver):
    acct = onboarded_account.id
    emulator.register_webhook(receiver.url, connect=True)  # connected payouts go to Connect endpoints
    emulator.post("/_emulator/balance/topup", {"amount": 20000})
    stripe.Transfer.create(amount=10000, currency="usd", destination=acct)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Payout.create(amount=50000, currency="usd", stripe_account=acct)
    assert ei.value.code == "balance_insufficient"
    po = stripe.Payout.create(amount=3000, currency="usd", stripe_account=acct, metadata={"run": "1"})
    assert po.id.startswith("po_") and po.status == "pending"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Payout.retrieve(po.id)  # not visible on the platform
    emulator.post("/_emulator/payouts/fail_next", {"account": acct, "failure_code": "account_closed"})
    po2 = stripe.Payout.create(amount=2000, currency="usd", stripe_account=acct)
    assert emulator.flush_webhooks(timeout=20)
    assert stripe.Payout.retrieve(po.id, stripe_account=acct).status == "paid"
    failed = stripe.Payout.retrieve(po2.id, stripe_account=acct)
    assert failed.status == "failed" and failed.failure_code == "account_closed"
    assert failed.failure_balance_transaction.startswith("txn_")
    assert stripe.Balance.retrieve(stripe_account=acct).available[0].amount == 7000
    assert [p.id for p in stripe.Payout.list(stripe_account=acct).data] == [po2.id, po.id]
    got = {(e["type"], e["data"]["object"].get("id")) for e in receiver.events()}
    assert ("payout.paid", po.id) in got and ("payout.failed", po2.id) in got
    assert all(e["account"] == acct for e in receiver.events() if e["type"].startswith("payout."))
    # per-account failure switch
    emulator.post("/_emulator/accounts/%s/payouts_fail" % acct, {"enabled": True})
    po3 = stripe.Payout.create(amount=100, currency="usd", stripe_account=acct)
    emulator.flush_webhooks(timeout=20)
    assert stripe.Payout.retrieve(po3.id, stripe_account=acct).status == "failed"
    # restricted account cannot pay out
    emulator.post("/_emulator/accounts/%s/restrict" % acct)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Payout.create(amount=100, currency="usd", stripe_account=acct)
    assert ei.value.code == "payouts_not_allowed"


def test_funds_pending_and_settle(emulator):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=10000, currency="usd", payment_method="pm_card_visa", confirm=True
    )
    bal = stripe.Balance.retrieve()
    assert bal.available[0].amount == 0 and bal.pending[0].amount == 9680
    assert emulator.flush_webhooks()  # the capture settles asynchronously (balance_transaction, transfer)
    txn = stripe.BalanceTransaction.retrieve(stripe.Charge.retrieve(pi.latest_charge).balance_transaction)
    assert txn.status == "pending"
    emulator.post("/_emulator/balance/settle")
    bal = stripe.Balance.retrieve()
    assert bal.available[0].amount == 9680 and bal.pending[0].amount == 0
    assert stripe.BalanceTransaction.retrieve(txn.id).status == "available"
    assert stripe.Event.list(type="balance.available").data
    txns = stripe.BalanceTransaction.list(type="charge").data
    assert [t.id for t in txns] == [txn.id]


def test_balance_transactions_follow_money(emulator, onboarded_account):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"],
        amount=10000,
        currency="usd",
        payment_method="pm_card_bypassPending",
        confirm=True,
    )
    stripe.Refund.create(payment_intent=pi.id, amount=2000)
    stripe.Transfer.create(amount=5000, currency="usd", destination=onboarded_account.id)
    kinds = [t.type for t in stripe.BalanceTransaction.list().data]
    assert kinds == ["transfer", "refund", "charge"]
    assert stripe.Balance.retrieve().available[0].amount == 10000 - 320 - 2000 - 5000
    conn = stripe.BalanceTransaction.list(stripe_account=onboarded_account.id).data
    assert [t.type for t in conn] == ["payment"] and conn[0].amount == 5000
