"""The one module that turns decimal strings into minor units and back, and splits money.

Below the API every amount is an integer number of minor units ("cents") with a currency. Talkpay
runs in one currency end to end, `settings.STRIPE_CURRENCY`: bookings are priced, charged, refunded
and paid out in it. A currency's minor unit follows its exponent as Stripe counts it: two decimals
for most, none for the zero-decimal currencies (JPY: 500 is ¥500), so nothing multiplies by 100
blindly. The split rounds the app fee half up and gives the listener the rest, so the two shares
always add up to the total.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
# Stripe's zero-decimal currencies: amounts are whole units.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)


def default_currency() -> str:
    from django.conf import settings

    return settings.STRIPE_CURRENCY.lower()


def exponent(currency: str | None = None) -> int:
    """How many decimals the currency's minor unit has (2 for usd and eur, 0 for jpy)."""
    return 0 if (currency or default_currency()).lower() in ZERO_DECIMAL else 2


def _quantum(currency: str | None) -> Decimal:
    return Decimal(1).scaleb(-exponent(currency))


class MoneyError(ValueError):
    pass


def to_cents(amount: Decimal | str | int | float, currency: str | None = None) -> int:
    """`"30.00"` → 3000 (usd), `"500"` → 500 (jpy). Refuses fractions of a minor unit rather than
    rounding money silently."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as error:
        raise MoneyError(f"{amount!r} is not an amount.") from error
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not an amount.")
    try:
        whole = value.quantize(_quantum(currency))
    except InvalidOperation as error:  # more digits than the decimal context holds ("1e30")
        raise MoneyError(f"{amount!r} is too large an amount.") from error
    if value != whole:
        raise MoneyError(f"{amount!r} has fractions of a cent.")
    return int(value.scaleb(exponent(currency)))


def to_decimal(cents: int, currency: str | None = None) -> Decimal:
    """3000 → Decimal("30.00") (usd); 500 → Decimal("500") (jpy)."""
    return Decimal(int(cents)).scaleb(-exponent(currency)).quantize(_quantum(currency))


def format_amount(cents: int, currency: str | None = None) -> str:
    """3000 → "30.00", the API's money format."""
    return str(to_decimal(cents, currency))


def display(cents: int, currency: str) -> str:
    """3000, "usd" → "30.00 USD", money as people read it (admin, emails)."""
    return f"{format_amount(cents, currency)} {currency.upper()}"


@dataclass(frozen=True)
class Split:
    total: int
    app_fee: int
    listener: int


def split(total_cents: int, app_fee_percentage: Decimal | str) -> Split:
    """`app_fee = round_half_up(total × pct / 100)`, `listener = total − app_fee`."""
    if total_cents < 0:
        raise MoneyError("A total cannot be negative.")
    pct = Decimal(str(app_fee_percentage))
    if pct < 0 or pct > 100:
        raise MoneyError("The app fee percentage must be between 0 and 100.")
    app_fee = int((Decimal(total_cents) * pct / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return Split(total=total_cents, app_fee=app_fee, listener=total_cents - app_fee)


def proportion(part_cents: int, of_cents: int, share_cents: int) -> int:
    """The share of `share_cents` that `part_cents` out of `of_cents` stands for, rounded half up.

    Used to reverse a split in proportion to a partial refund: the app's part is computed with this
    and the listener's part is the refund minus it, so the two reversals add up to the refund.
    """
    if of_cents <= 0:
        return 0
    return int((Decimal(share_cents) * part_cents / of_cents).quantize(Decimal(1), rounding=ROUND_HALF_UP))
