import stripe

from stripe_emulator.testing import EmulatorProcess


def test_request_log_one_line_per_request_and_quiet(tmp_path):
    log = tmp_path / "emu.log"
    with EmulatorProcess(log_path=str(log)) as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        client = emu.stripe_client()
        client.v1.customers.create()
        client.v1.customers.list()
    lines = log.read_text().splitlines()
    assert any(line.startswith("POST /v1/customers 200 ") and line.endswith("ms") for line in lines)
    assert any(line.startswith("GET /v1/customers") for line in lines)
    quiet_log = tmp_path / "quiet.log"
    with EmulatorProcess(log_path=str(quiet_log), quiet=True) as emu:
        emu.stripe_client().v1.customers.create()
    assert "/v1/customers" not in quiet_log.read_text()


def _charge_and_balance(emu):
    client = emu.stripe_client()
    client.v1.payment_intents.create(
        params={
            "allowed_payment_method_types": ["card"],
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    return client.v1.balance.retrieve()


def test_funds_are_pending_by_default_and_the_flags_change_it(tmp_path):
    with EmulatorProcess(quiet=True) as emu:
        bal = _charge_and_balance(emu)
        assert bal.pending[0].amount == 941 and bal.available[0].amount == 0
        assert emu.get("config")["funds_pending"] is True and emu.get("config")["funds_delay"] == 172800
    with EmulatorProcess(quiet=True, funds_pending=False) as emu:  # --funds-available
        bal = _charge_and_balance(emu)
        assert bal.available[0].amount == 941 and bal.pending[0].amount == 0
    with EmulatorProcess(quiet=True, funds_delay=60) as emu:
        bal = _charge_and_balance(emu)
        assert bal.pending[0].amount == 941
        txn = emu.stripe_client().v1.balance_transactions.list(params={"type": "charge"}).data[0]
        assert txn.status == "pending" and txn.available_on == txn.created + 60
        assert isinstance(stripe.Webhook, type)
