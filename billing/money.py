"""The one module that turns decimal strings into minor units and back, and splits money.

Below the API every amount is an integer number of cents with a currency. The split rounds the
app fee half up and gives the listener the rest, so the two shares always add up to the total.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


class MoneyError(ValueError):
    pass


def to_cents(amount: Decimal | str | int | float) -> int:
    """`"30.00"` → 3000. Refuses fractions of a cent rather than rounding money silently."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as error:
        raise MoneyError(f"{amount!r} is not an amount.") from error
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not an amount.")
    if value != value.quantize(CENT):
        raise MoneyError(f"{amount!r} has fractions of a cent.")
    return int(value * 100)


def to_decimal(cents: int) -> Decimal:
    """3000 → Decimal("30.00")."""
    return (Decimal(int(cents)) / 100).quantize(CENT)


def format_amount(cents: int) -> str:
    """3000 → "30.00", the API's money format."""
    return str(to_decimal(cents))


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
