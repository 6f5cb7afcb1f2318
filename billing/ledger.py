"""The double-entry ledger: every money movement is a balanced, immutable transaction with a unique key.

Amounts are signed cents: debits positive, credits negative, and the entries of one transaction sum
to zero. Accounts are named by code:

- `platform:cash`      asset: money held in the platform's Stripe balance
- `platform:revenue`   revenue: the app's share of bookings
- `platform:dispute_fees` expense: Stripe's dispute fees, borne by the app
- `platform:processing_fees` expense: Stripe's processing fees on charges (kept by Stripe on refunds)
- `listener:<id>:payable` liability: what the platform owes a listener

A correction is a new transaction, never an edit (PostgreSQL refuses updates and deletes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction
from common.prepared import PreparedQuery, insert_parts, row_insert, rows_insert

PLATFORM_CASH = "platform:cash"
APP_REVENUE = "platform:revenue"
DISPUTE_FEES = "platform:dispute_fees"
# Stripe's processing fees, from the balance transactions (billing.fees): the platform's cost; the
# listener's share is computed from the gross price (DESIGN money rule 2).
PROCESSING_FEES = "platform:processing_fees"
# Money Stripe took back from a listener's transfer that Talkpay did not ask for (an operator on the
# dashboard): back in our balance, owed to nobody until an operator decides (payouts.services.reversals).
UNREQUESTED_REVERSALS = "platform:unrequested_reversals"

_FIXED_ACCOUNTS = {
    PLATFORM_CASH: ("Platform Stripe balance", LedgerAccount.Kind.ASSET),
    APP_REVENUE: ("App revenue (fees)", LedgerAccount.Kind.REVENUE),
    DISPUTE_FEES: ("Stripe dispute fees", LedgerAccount.Kind.EXPENSE),
    PROCESSING_FEES: ("Stripe processing fees", LedgerAccount.Kind.EXPENSE),
    UNREQUESTED_REVERSALS: ("Transfer reversals Talkpay did not ask for (to review)", LedgerAccount.Kind.LIABILITY),
}

# Accounts whose natural balance is a credit; their balance is shown as -(sum of entries).
_CREDIT_NORMAL = {LedgerAccount.Kind.LIABILITY, LedgerAccount.Kind.REVENUE}


class UnbalancedTransaction(ValueError):
    pass


@dataclass(frozen=True)
class Line:
    account: str
    amount: int


def listener_payable(listener_id: int) -> str:
    return f"listener:{listener_id}:payable"


def account_get_or_create(code: str, *, currency: str = "usd") -> LedgerAccount:
    if code in _FIXED_ACCOUNTS:
        name, kind = _FIXED_ACCOUNTS[code]
        owner_id = None
    elif code.startswith("listener:") and code.endswith(":payable"):
        owner_id = int(code.split(":")[1])
        name, kind = f"Payable to listener {owner_id}", LedgerAccount.Kind.LIABILITY
    else:
        raise ValueError(f"Unknown ledger account {code!r}")
    account, _ = LedgerAccount.objects.get_or_create(
        code=code, defaults={"name": name, "kind": kind, "currency": currency, "owner_id": owner_id}
    )
    return account


def debit(account: str, amount: int) -> Line:
    return Line(account, amount)


def credit(account: str, amount: int) -> Line:
    return Line(account, -amount)


def _checked(key: str, lines: Sequence[Line]) -> list[Line]:
    """Zero lines are dropped (a 0-cent share has nothing to book); unbalanced lines are refused
    before they reach the database."""
    lines = [line for line in lines if line.amount != 0]
    if not lines:
        raise UnbalancedTransaction(f"{key}: nothing to book")
    total = sum(line.amount for line in lines)
    if total != 0:
        raise UnbalancedTransaction(f"{key}: entries sum to {total}, not 0")
    return lines


# A booking's transaction names a few accounts: their look-up is compiled once per number of codes
# (common.prepared), as every succeeded payment, refund and dispute runs it.
_PREPARED_CODES_MAX = 6
_accounts_by_codes: dict[int, PreparedQuery] = {}


def _accounts_query(count: int) -> PreparedQuery:
    query = _accounts_by_codes.get(count)
    if query is None:
        names = [f"code{index}" for index in range(count)]
        query = _accounts_by_codes[count] = PreparedQuery(
            lambda **codes: LedgerAccount.objects.filter(code__in=list(codes.values())).values_list("code", "id"),
            **dict.fromkeys(names, str),
        )
    return query


def _account_ids(codes: set[str], *, currency: str) -> dict[str, int]:
    # One query for the accounts that exist (all of them, but for a new listener's first booking); ids
    # only, as the entries need nothing else.
    if len(codes) <= _PREPARED_CODES_MAX:
        ids = dict(_accounts_query(len(codes)).all(**{f"code{index}": code for index, code in enumerate(codes)}))
    else:
        ids = dict(LedgerAccount.objects.filter(code__in=codes).values_list("code", "id"))
    for code in codes - ids.keys():
        ids[code] = account_get_or_create(code, currency=currency).pk
    return ids


def transaction_exists(*, key: str) -> bool:
    """Whether the fact named `key` is booked already."""
    return LedgerTransaction.objects.filter(key=key).exists()


def ledger_post(
    *,
    key: str,
    kind: str,
    lines: Sequence[Line],
    currency: str = "usd",
    description: str = "",
    booking_id: int | None = None,
    payment_id: int | None = None,
    metadata: dict | None = None,
    known_new: bool = False,
) -> tuple[LedgerTransaction, bool]:
    """Book `lines` once under `key`. Returns the transaction and whether this call created it.

    `known_new`: the caller holds the lock of the row the key names and has just seen the fact is not
    booked (a payment moving to succeeded), so the look-up and the savepoint are skipped: the key's
    unique constraint still refuses a second booking, and then the caller's whole transaction fails
    (as in `ledger_post_many`) instead of this call answering "booked already"."""
    lines = _checked(key, lines)
    if known_new:
        return _ledger_insert(key, kind, lines, currency, description, booking_id, payment_id, metadata), True
    existing = LedgerTransaction.objects.filter(key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            txn = _ledger_insert(key, kind, lines, currency, description, booking_id, payment_id, metadata)
    except IntegrityError:
        # Another worker booked the same fact a moment ago: the key is the proof.
        return LedgerTransaction.objects.get(key=key), False
    return txn, True


def _ledger_insert(key, kind, lines, currency, description, booking_id, payment_id, metadata) -> LedgerTransaction:
    # Every payment, refund and dispute books here: its statements are kept compiled (common.prepared),
    # and on PostgreSQL the transaction and its entries are one statement.
    fields = {
        "key": key,
        "kind": kind,
        "currency": currency,
        "description": description,
        "booking_id": booking_id,
        "payment_id": payment_id,
        "metadata": metadata or {},
    }
    if connection.vendor == "postgresql":
        return _ledger_insert_with_entries(fields, lines, currency=currency)
    txn = row_insert(LedgerTransaction, **fields)
    ids = _account_ids({line.account for line in lines}, currency=currency)
    _entries_insert(txn.pk, lines, ids)
    return txn


def _entries_insert(transaction_id: int, lines: Sequence[Line], ids: dict[str, int]) -> None:
    rows_insert(
        LedgerEntry,
        [{"transaction_id": transaction_id, "account_id": ids[line.account], "amount": line.amount} for line in lines],
    )


_WITH_ENTRIES_SQL: dict[int, str] = {}


def _ledger_insert_with_entries(fields: dict, lines: Sequence[Line], *, currency: str) -> LedgerTransaction:
    """The transaction and its entries in one statement: a data-modifying CTE inserts the transaction,
    then an entry per line whose account it finds by code, and answers the codes it found no account
    for (a new listener's first booking), read in the same snapshot as the entries' look-up. Those lines
    are booked once their accounts exist, in the same database transaction, so the commit's balance
    check (billing migration 0003) sees every line."""
    txn, insert_sql, params = insert_parts(LedgerTransaction, **fields)
    sql = _WITH_ENTRIES_SQL.get(len(lines))
    if sql is None:
        quote = connection.ops.quote_name
        entries, accounts = quote(LedgerEntry._meta.db_table), quote(LedgerAccount._meta.db_table)
        sql = _WITH_ENTRIES_SQL[len(lines)] = (
            f"WITH txn AS ({insert_sql} RETURNING id), "
            f"line (code, amount) AS (VALUES {', '.join('(%s, %s::bigint)' for _ in lines)}), "
            f"entry AS (INSERT INTO {entries} (transaction_id, account_id, amount) "
            f"SELECT txn.id, account.id, line.amount FROM txn, line "
            f"JOIN {accounts} account ON account.code = line.code) "
            f"SELECT (SELECT id FROM txn), ARRAY(SELECT line.code FROM line "
            f"WHERE NOT EXISTS (SELECT 1 FROM {accounts} account WHERE account.code = line.code))"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *(value for line in lines for value in (line.account, line.amount))])
        txn.pk, missing = cursor.fetchone()
    txn._state.adding = False
    txn._state.db = connection.alias
    if missing:
        unbooked = [line for line in lines if line.account in missing]
        _entries_insert(txn.pk, unbooked, _account_ids(set(missing), currency=currency))
    return txn


@dataclass(frozen=True)
class Posting:
    key: str
    kind: str
    lines: Sequence[Line]
    currency: str = "usd"
    description: str = ""
    metadata: dict | None = None


def ledger_post_many(postings: Sequence[Posting]) -> None:
    """Book many new facts in two bulk inserts (a payout run books thousands). The caller guarantees
    the keys are new (it holds the locks of the rows they name); a key already booked raises
    IntegrityError and rolls the caller's transaction back, rather than being skipped silently."""
    if not postings:
        return
    checked = [(posting, _checked(posting.key, posting.lines)) for posting in postings]
    ids = _account_ids({line.account for _, lines in checked for line in lines}, currency=postings[0].currency)
    txns = LedgerTransaction.objects.bulk_create(
        LedgerTransaction(
            key=posting.key,
            kind=posting.kind,
            currency=posting.currency,
            description=posting.description,
            metadata=posting.metadata or {},
        )
        for posting, _ in checked
    )
    LedgerEntry.objects.bulk_create(
        LedgerEntry(transaction=txn, account_id=ids[line.account], amount=line.amount)
        for txn, (_, lines) in zip(txns, checked, strict=True)
        for line in lines
    )


def balance(code: str) -> int:
    """The account's natural balance in cents (what a liability owes, what an asset holds)."""
    account = LedgerAccount.objects.filter(code=code).only("kind").first()
    if account is None:
        return 0
    raw = LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"] or 0
    return -raw if account.kind in _CREDIT_NORMAL else raw


def balances(codes: Iterable[str]) -> dict[str, int]:
    rows = (
        LedgerEntry.objects.filter(account__code__in=list(codes))
        .values("account__code", "account__kind")
        .annotate(total=Sum("amount"))
    )
    result = {code: 0 for code in codes}
    for row in rows:
        total = row["total"] or 0
        result[row["account__code"]] = -total if row["account__kind"] in _CREDIT_NORMAL else total
    return result
