"""The balance, balance transactions, settling pending funds and top-ups."""

from ..params import (
    STRLIST,
    validate,
)
from .router import route
from .state import rand


class BalanceMixin:
    def balance_obj(self, account):
        b = self.balances.get(account) or {}
        if not b:
            cur = self.objects[account]["default_currency"] if account else "usd"
            b = {cur: {"available": 0, "pending": 0}}
        avail = [
            {"amount": v["available"], "currency": c, "source_types": {"card": v["available"]}}
            for c, v in sorted(b.items())
        ]
        pend = [
            {"amount": v["pending"], "currency": c, "source_types": {"card": v["pending"]}}
            for c, v in sorted(b.items())
        ]
        out = {"object": "balance", "available": avail, "livemode": False, "pending": pend}
        if account is None:
            out["connect_reserved"] = [{"amount": 0, "currency": c} for c in sorted(b)]
        return out

    @route("GET", "/v1/balance")
    def balance_retrieve(self, ctx, q):
        validate(q, {"expand": STRLIST})
        return self.balance_obj(ctx.account)

    @route("GET", "/v1/balance_transactions/{tid}")
    def txn_retrieve(self, ctx, q, tid):
        validate(q, {"expand": STRLIST})
        return self._get("balance_transaction", "balance transaction", tid, ctx)

    @route("GET", "/v1/balance_transactions")
    def txn_list(self, ctx, q):
        t = self._pop_str(q, "type")
        src = self._pop_str(q, "source")
        cur = self._pop_str(q, "currency")
        payout = self._pop_str(q, "payout")
        if src:
            return self._list(
                ctx,
                q,
                "balance_transaction",
                "/v1/balance_transactions",
                index=("source", src),
                pred=lambda o: (not t or o["type"] == t) and (not cur or o["currency"] == cur),
            )
        if payout:
            po = self.objects.get(payout)
            ids = set(self.internal.get(payout, {}).get("txns", [])) if po else set()
            return self._list(ctx, q, "balance_transaction", "/v1/balance_transactions", pred=lambda o: o["id"] in ids)
        if t:
            return self._list(
                ctx,
                q,
                "balance_transaction",
                "/v1/balance_transactions",
                index=("type", t),
                pred=lambda o: not cur or o["currency"] == cur,
            )
        return self._list(
            ctx,
            q,
            "balance_transaction",
            "/v1/balance_transactions",
            pred=(lambda o: o["currency"] == cur) if cur else None,
        )

    def settle(self):
        """Move every pending balance to available now (platform and connected), whatever its
        `available_on` (which becomes now), without moving the clock."""
        moved = []
        now = self._now()
        for oid in self.order["balance_transaction"]:
            t = self.objects[oid]
            if t["status"] == "pending":
                t["available_on"] = now
                self._make_available(oid)
                moved.append(self.owner.get(oid))
        self.pending_funds = []
        for acct in dict.fromkeys(moved):
            self._emit("balance.available", self.balance_obj(acct), None, acct)
        return len(moved)

    def clock_advance(self, seconds):
        """Move emulated time on by `seconds`: funds whose `available_on` has come become available
        (`balance.available`), and objects created from now on carry the later timestamps."""
        self.clock_offset += int(seconds)
        released = self._release_due_funds()
        return self.clock_state(released)

    def clock_state(self, released=None):
        out = {"now": self._now(), "offset": self.clock_offset, "funds_delay": int(self.config["funds_delay"])}
        if released is not None:
            out["released_transactions"] = released
        # the soonest pending funds (the heap holds only pending ones: settle empties it)
        out["next_available_on"] = self.pending_funds[0][0] if self.pending_funds else None
        return out

    def topup(self, amount, currency, account=None):
        txn = self._txn(account, amount, currency, "topup", "tu_" + rand(), description="Emulator top-up")
        self._emit("balance.available", self.balance_obj(account), None, account)
        return txn
