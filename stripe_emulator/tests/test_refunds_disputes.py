import pytest
import stripe


def _paid(amount=5000, pm="pm_card_visa", **kw):
    return stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=amount, currency="usd", payment_method=pm, confirm=True, **kw
    )


def _available(**kw):
    return stripe.Balance.retrieve(**kw).available[0].amount


def test_partial_then_full_refund_and_over_refund_rejected(emulator):
    pi = _paid(5000)
    start = _available()
    r1 = stripe.Refund.create(
        payment_intent=pi.id, amount=1000, reason="requested_by_customer", metadata={"why": "partial"}
    )
    assert r1.id.startswith("re_") and r1.status == "succeeded" and r1.amount == 1000
    assert r1.charge == pi.latest_charge and r1.payment_intent == pi.id and r1.metadata.why == "partial"
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert ch.amount_refunded == 1000 and ch.refunded is False
    assert _available() == start - 1000
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(charge=ch.id, amount=4001)
    assert ei.value.http_status == 400 and ei.value.param == "amount"
    r2 = stripe.Refund.create(charge=ch.id)  # default: everything that remains
    assert r2.amount == 4000
    ch = stripe.Charge.retrieve(ch.id, expand=["refunds"])  # listed only when expanded
    assert ch.refunded is True and ch.amount_refunded == 5000
    assert [r.id for r in ch.refunds.data] == [r2.id, r1.id]
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent=pi.id)
    assert ei.value.code == "charge_already_refunded"
    assert [r.id for r in stripe.Refund.list(payment_intent=pi.id).data] == [r2.id, r1.id]
    assert [r.id for r in stripe.Refund.list(charge=ch.id, limit=1).data] == [r2.id]
    r1 = stripe.Refund.modify(r1.id, metadata={"note": "x"})
    assert r1.metadata.note == "x" and stripe.Refund.retrieve(r1.id).metadata.why == "partial"
    types = [e.type for e in stripe.Event.list().data]
    assert types.count("refund.created") == 2 and types.count("charge.refunded") == 2
    assert "refund.updated" in types and "charge.refund.updated" in types
    refunded_evt = stripe.Event.list(type="charge.refunded").data[0]
    assert refunded_evt.data.previous_attributes.amount_refunded == 1000


def test_refund_validation(emulator):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create()
    assert ei.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent="pi_missing")
    assert ei.value.code == "resource_missing" and ei.value.param == "payment_intent"
    pi = stripe.PaymentIntent.create(allowed_payment_method_types=["card"], amount=1000, currency="usd")
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Refund.create(payment_intent=pi.id)
    pi = _paid(1000)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent=pi.id, amount=0)
    assert ei.value.param == "amount"


def test_dispute_card_opens_dispute_automatically(emulator):
    pi = _paid(8000, pm="pm_card_createDispute")
    assert pi.status == "succeeded"
    assert emulator.flush_webhooks(timeout=20)
    disputes = stripe.Dispute.list(payment_intent=pi.id).data
    assert len(disputes) == 1
    d = disputes[0]
    assert d.id.startswith("dp_") and d.amount == 8000 and d.charge == pi.latest_charge
    assert d.status == "needs_response"
    assert d.balance_transactions[0].net == -9500 and d.balance_transactions[0].fee == 1500
    assert stripe.Charge.retrieve(pi.latest_charge).disputed is True
    types = [e.type for e in stripe.Event.list().data]
    assert "charge.dispute.created" in types and "charge.dispute.funds_withdrawn" in types
    with pytest.raises(stripe.InvalidRequestError) as ei:
        stripe.Refund.create(payment_intent=pi.id)
    assert ei.value.code == "charge_disputed"


def test_dispute_helper_evidence_and_close_won_lost(emulator):
    pi = _paid(6000)
    before = _available()
    d = emulator.post("/_emulator/charges/%s/dispute" % pi.latest_charge, {"reason": "product_not_received"})
    assert d["reason"] == "product_not_received"
    assert _available() == before - 7500
    d = stripe.Dispute.modify(
        d["id"], evidence={"customer_name": "Ann", "uncategorized_text": "Delivered"}, metadata={"case": "1"}
    )
    assert d.status == "under_review" and d.evidence.customer_name == "Ann"
    assert d.evidence_details.submission_count == 1
    upd = stripe.Event.list(type="charge.dispute.updated").data[0]
    assert upd.data.previous_attributes.status == "needs_response"
    won = emulator.post("/_emulator/disputes/%s/close" % d.id, {"outcome": "won"})
    assert won["status"] == "won"
    assert _available() == before
    types = [e.type for e in stripe.Event.list().data]
    assert "charge.dispute.funds_reinstated" in types and "charge.dispute.closed" in types

    pi2 = _paid(3000)
    d2 = emulator.post("/_emulator/charges/%s/dispute" % pi2.latest_charge, {})
    closed = stripe.Dispute.close(d2["id"])
    assert closed.status == "lost"
    assert stripe.Dispute.retrieve(d2["id"]).status == "lost"
    assert {x.id for x in stripe.Dispute.list().data} == {d.id, d2["id"]}
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Dispute.modify(d2["id"], evidence={"customer_name": "late"})
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Dispute.modify(d.id, evidence={"not_a_field": "x"})


def test_refund_failure_helper(emulator):
    pi = _paid(4000)
    start = _available()
    r = stripe.Refund.create(payment_intent=pi.id, amount=3000)
    assert _available() == start - 3000
    failed = emulator.post("/_emulator/refunds/%s/fail" % r.id, {"failure_reason": "expired_or_canceled_card"})
    assert failed["status"] == "failed" and failed["failure_reason"] == "expired_or_canceled_card"
    assert _available() == start
    ch = stripe.Charge.retrieve(pi.latest_charge)
    assert ch.amount_refunded == 0 and ch.refunded is False
    upd = stripe.Event.list(type="charge.refund.updated").data[0]
    assert upd.data.object.status == "failed" and upd.data.previous_attributes.status == "succeeded"
    assert stripe.Event.list(type="refund.failed").data[0].data.object.id == r.id
    # the money can be refunded again
    assert stripe.Refund.create(payment_intent=pi.id).amount == 4000
