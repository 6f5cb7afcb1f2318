"""Funds are pending by default, as on Stripe: a charge's funds become available after the account's
delay in emulated time (`/_emulator/clock/advance`), the bypass card skips it, a transfer needs the
available balance unless `source_transaction` ties it to a charge's funds."""

import time

import pytest
import stripe

DAY = 86400


def _charge(amount=10000, pm="pm_card_visa"):
    pi = stripe.PaymentIntent.create(
        allowed_payment_method_types=["card"], amount=amount, currency="usd", payment_method=pm, confirm=True
    )
    # the capture settles asynchronously: the charge shows its balance transaction with a later charge.updated
    deadline = time.monotonic() + 10
    while True:
        ch = stripe.Charge.retrieve(pi.latest_charge, expand=["balance_transaction"])
        if ch.balance_transaction is not None or time.monotonic() > deadline:
            return ch
        time.sleep(0.01)


def _balance(account=None):
    b = stripe.Balance.retrieve(stripe_account=account) if account else stripe.Balance.retrieve()
    return b.available[0].amount, b.pending[0].amount


def test_a_charges_funds_are_pending_for_two_days(emulator):
    ch = _charge()
    txn = ch.balance_transaction
    assert txn.status == "pending" and txn.available_on == txn.created + 2 * DAY
    assert _balance() == (0, 9680)


def test_advancing_the_clock_makes_funds_available_once_their_day_has_come(emulator):
    ch = _charge()
    txn_id = ch.balance_transaction.id
    before = emulator.get("clock")
    # a day later the funds are still pending
    out = emulator.advance_clock(DAY)
    assert out["released_transactions"] == 0 and out["now"] >= before["now"] + DAY
    assert stripe.BalanceTransaction.retrieve(txn_id).status == "pending"
    assert _balance() == (0, 9680)
    # two days after the charge they are available, with a balance.available event
    out = emulator.advance_clock(DAY)
    assert out["released_transactions"] == 1 and out["next_available_on"] is None
    assert stripe.BalanceTransaction.retrieve(txn_id).status == "available"
    assert _balance() == (9680, 0)
    events = stripe.Event.list(type="balance.available").data
    assert len(events) == 1 and events[0].data.object.available[0].amount == 9680
    # objects created from now on carry the emulated time
    assert _charge().created >= before["now"] + 2 * DAY


def test_funds_become_available_as_real_time_passes_without_an_advance(emulator):
    emulator.configure(funds_delay=1)
    txn = _charge().balance_transaction
    assert txn.available_on == txn.created + 1
    time.sleep(max(0.0, txn.available_on + 0.1 - time.time()))
    # any API request releases what is due before it is answered (no helper called)
    assert stripe.BalanceTransaction.retrieve(txn.id).status == "available"
    assert _balance() == (9680, 0) and len(stripe.Event.list(type="balance.available").data) == 1


def test_the_bypass_pending_card_goes_straight_to_available(emulator):
    txn = _charge(pm="pm_card_bypassPending").balance_transaction
    assert txn.status == "available" and txn.available_on == txn.created
    assert _balance() == (9680, 0)


def test_funds_pending_can_be_turned_off(emulator):
    emulator.configure(funds_pending=False)
    assert _charge().balance_transaction.status == "available"
    assert _balance() == (9680, 0)


def test_a_transfer_beyond_the_available_balance_is_refused(emulator, onboarded_account):
    _charge()  # 9680 pending
    _charge(amount=2000, pm="pm_card_bypassPending")  # 1912 available
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Transfer.create(amount=1913, currency="usd", destination=onboarded_account.id)
    assert refused.value.http_status == 400 and refused.value.code == "balance_insufficient"
    assert stripe.Transfer.list().data == [] and _balance() == (1912, 9680)
    # what is available can be transferred, and is available on the connected account at once
    tr = stripe.Transfer.create(amount=1912, currency="usd", destination=onboarded_account.id)
    assert tr.source_transaction is None
    assert _balance() == (0, 9680) and _balance(onboarded_account.id) == (1912, 0)


def test_source_transaction_transfers_a_pending_charges_funds(emulator, onboarded_account):
    ch = _charge()
    available_on = ch.balance_transaction.available_on
    tr = stripe.Transfer.create(amount=9000, currency="usd", destination=onboarded_account.id, source_transaction=ch.id)
    assert tr.source_transaction == ch.id
    # pending on both sides until the charge's funds are available, and on the same day
    assert stripe.BalanceTransaction.retrieve(tr.balance_transaction).available_on == available_on
    assert _balance() == (0, 680) and _balance(onboarded_account.id) == (0, 9000)
    emulator.advance_clock(2 * DAY)
    assert _balance() == (680, 0) and _balance(onboarded_account.id) == (9000, 0)


def test_source_transaction_is_bounded_by_what_the_charge_has_left(emulator, onboarded_account):
    ch = _charge()
    stripe.Refund.create(charge=ch.id, amount=1000)
    stripe.Transfer.create(amount=6000, currency="usd", destination=onboarded_account.id, source_transaction=ch.id)
    # 10000 captured - 1000 refunded - 6000 transferred = 3000 left
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Transfer.create(amount=3001, currency="usd", destination=onboarded_account.id, source_transaction=ch.id)
    assert refused.value.code == "balance_insufficient" and refused.value.param == "amount"
    stripe.Transfer.create(amount=3000, currency="usd", destination=onboarded_account.id, source_transaction=ch.id)


@pytest.mark.parametrize(
    "source,currency,code,param",
    [
        ("ch_missing", "usd", "resource_missing", "source_transaction"),
        (None, "eur", None, "currency"),
    ],
)
def test_source_transaction_must_be_a_succeeded_charge_in_the_transfer_currency(
    emulator, onboarded_account, source, currency, code, param
):
    ch = _charge()
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Transfer.create(
            amount=100, currency=currency, destination=onboarded_account.id, source_transaction=source or ch.id
        )
    assert refused.value.http_status == 400 and refused.value.param == param
    if code:
        assert refused.value.code == code


def test_a_reversal_of_a_pending_transfer_takes_back_pending_funds(emulator, onboarded_account):
    ch = _charge()
    tr = stripe.Transfer.create(amount=5000, currency="usd", destination=onboarded_account.id, source_transaction=ch.id)
    stripe.Transfer.create_reversal(tr.id, amount=2000)
    assert _balance(onboarded_account.id) == (0, 3000) and _balance() == (0, 9680 - 3000)


@pytest.mark.parametrize("body", [{}, {"seconds": -1}, {"seconds": "soon"}])
def test_the_clock_only_moves_forward_by_whole_seconds(emulator, body):
    from stripe_emulator.testing import EmulatorError

    with pytest.raises(EmulatorError) as refused:
        emulator.post("clock/advance", body)
    assert "-> 400" in str(refused.value) and "'param': 'seconds'" in str(refused.value)


def test_reset_puts_the_clock_back(emulator):
    emulator.advance_clock(5 * DAY)
    emulator.reset()
    assert emulator.get("clock")["offset"] == 0
