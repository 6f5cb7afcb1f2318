import pytest

from payouts import services
from payouts.models import Payout
from payouts.periods import period_parse
from payouts.tests.conftest import at
from payouts.tests.factories import ListenerPayoutFactory
from web.testing import auth_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_listener(connected_listener, fund_platform):
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-05 10:00"))
    services.payout_run(period=period_parse("weekly", "2026-W45"))
    return listener


def test_the_payouts_list_shows_each_earnings_payout_with_period_amount_status_and_transfer(paid_listener):
    payout = Payout.objects.get(listener=paid_listener)

    rows = auth_client(paid_listener).get("/api/payment/payouts/").json()["results"]

    assert len(rows) == 2
    assert {row["payout"] for row in rows} == {payout.pk}
    assert rows[0]["payout_detail"] == {
        "id": payout.pk,
        "schedule": "weekly",
        "period_start": "2026-11-02",
        "period_end": "2026-11-08",
        "amount": "54.00",
        "amount_reversed": "0.00",
        "currency": "usd",
        "status": "paid",
        "stripe_transfer_id": payout.stripe_transfer_id,
        "paid_at": rows[0]["payout_detail"]["paid_at"],
    }
    assert payout.stripe_transfer_id.startswith("tr_")


def test_the_transfers_list_shows_one_row_per_payout_and_only_the_listeners_own(paid_listener, connected_listener):
    body = auth_client(paid_listener).get("/api/payment/payouts/transfers/").json()
    [row] = body["results"] if isinstance(body, dict) else body
    assert (row["period_start"], row["amount"], row["status"]) == ("2026-11-02", "54.00", "paid")

    other = auth_client(connected_listener()).get("/api/payment/payouts/transfers/").json()
    assert (other["results"] if isinstance(other, dict) else other) == []
