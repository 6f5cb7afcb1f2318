from decimal import Decimal

import pytest

from billing import money


@pytest.mark.parametrize(
    ("price", "pct", "app_fee", "listener"),
    [
        ("30.00", "10", 300, 2700),
        ("50.00", "10", 500, 4500),
        ("70.00", "10", 700, 6300),
        ("0.05", "10", 1, 4),  # 0.5 cent rounds half up to the app
        ("33.33", "10", 333, 3000),
        ("19.99", "12.5", 250, 1749),  # 249.875 → 250
        ("10.01", "15", 150, 851),  # 150.15 → 150
        ("100.00", "0", 0, 10000),
        ("100.00", "100", 10000, 0),
    ],
)
def test_split_is_exact_and_adds_up(price, pct, app_fee, listener):
    shares = money.split(money.to_cents(price), Decimal(pct))

    assert (shares.app_fee, shares.listener) == (app_fee, listener)
    assert shares.app_fee + shares.listener == shares.total


def test_split_adds_up_for_every_cent_amount_and_odd_percentages():
    for total in range(1, 5000, 7):
        for pct in ("10", "7.5", "33.33", "12.25"):
            shares = money.split(total, pct)
            assert shares.app_fee + shares.listener == total
            assert 0 <= shares.app_fee <= total


def test_amounts_round_trip_between_cents_and_strings():
    assert money.to_cents("30.00") == 3000
    assert money.to_cents(Decimal("0.01")) == 1
    assert money.format_amount(2700) == "27.00"
    assert money.format_amount(5) == "0.05"


@pytest.mark.parametrize("bad", ["30.001", "abc", "NaN", "Infinity", "1e30", "-1e400"])
def test_fractions_of_a_cent_and_non_numbers_are_refused(bad):
    with pytest.raises(money.MoneyError):
        money.to_cents(bad)


def test_proportion_reverses_a_partial_refund_exactly():
    # $30 booking, $3 app fee; a $15 refund takes back $1.50 of the fee and $13.50 of the listener's share.
    app_part = money.proportion(1500, 3000, 300)
    assert app_part == 150
    assert 1500 - app_part == 1350
