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


def test_funds_pending_flag(tmp_path):
    with EmulatorProcess(quiet=True, funds_pending=True) as emu:
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
        bal = client.v1.balance.retrieve()
        assert bal.pending[0].amount == 941 and bal.available[0].amount == 0
        assert isinstance(stripe.Webhook, type)
