"""The route decorator: path patterns become dispatch keys, and a route has one handler."""

import io

import pytest

from stripe_emulator.core import Emulator, route
from stripe_emulator.core.router import route_key


def test_route_key_reads_resource_ids_and_action():
    assert route_key("GET", "/v1/balance") == ("GET", "balance", 0, None, 0)
    assert route_key("POST", "/v1/customers/{cid}") == ("POST", "customers", 1, None, 0)
    assert route_key("POST", "/v1/payment_intents/{pid}/confirm") == ("POST", "payment_intents", 1, "confirm", 0)
    assert route_key("GET", "/v1/transfers/{tid}/reversals/{rid}") == ("GET", "transfers", 1, "reversals", 1)


@pytest.mark.parametrize(
    "path", ["/v2/balance", "/v1", "/v1/transfers/tr_1", "/v1/transfers/{tid}/{x}", "/v1/a/{b}/c/{d}/e"]
)
def test_route_key_refuses_malformed_patterns(path):
    with pytest.raises(ValueError):
        route_key("GET", path)


def test_every_handler_is_routed_once_and_publishable_keys_reach_only_two_routes():
    emu = Emulator(log=io.StringIO())
    # + login_links, charges capture, refunds cancel (issue 12), capabilities (2), subscription_schedules (6)
    assert len(emu.routes) == 106
    publishable = sorted(k for k, (_, pk) in emu.routes.items() if pk)
    assert publishable == [
        ("GET", "payment_intents", 1, None, 0),
        ("GET", "setup_intents", 1, None, 0),
        ("POST", "payment_intents", 1, "confirm", 0),
        ("POST", "setup_intents", 1, "confirm", 0),
    ]
    assert emu.routes[("GET", "transfers", 1, "reversals", 1)][0].__name__ == "reversal_retrieve"


def test_two_handlers_for_one_route_are_refused():
    class Twice(Emulator):
        @route("GET", "/v1/balance")
        def balance_again(self, ctx, q):
            return {}

    with pytest.raises(RuntimeError, match="two handlers"):
        Twice(log=io.StringIO())
