"""How stored objects are served: nested lists, list pagination, expand, metadata and diffs."""

from ..params import (
    LIST_SPEC,
    ApiError,
    invalid,
    validate,
)
from .state import jcopy, not_found
from .tables import PREFIX_TYPE


class RenderMixin:
    def _out(self, o):
        if o.get("deleted"):
            return {"id": o["id"], "object": o["object"], "deleted": True}
        kind = o.get("object")
        # A charge's `refunds` is not included since API 2022-11-15: only `expand[]=refunds` adds it
        # (_expandable_list), and webhook payloads never have it.
        if kind == "transfer":
            revs = [self.objects[r] for r in reversed(self.idx.get(("transfer_reversal", "transfer", o["id"]), ()))]
            o = dict(o)
            o["reversals"] = {
                "object": "list",
                "data": revs[:10],
                "has_more": len(revs) > 10,
                "total_count": len(revs),
                "url": "/v1/transfers/%s/reversals" % o["id"],
            }
        return o

    @staticmethod
    def _diff(before, after):
        prev = {}
        for k, v in before.items():
            if after.get(k) != v:
                if isinstance(v, dict) and isinstance(after.get(k), dict) and k == "metadata":
                    sub = {}
                    nv = after[k]
                    for mk in set(v) | set(nv):
                        if v.get(mk) != nv.get(mk):
                            sub[mk] = v.get(mk, "")
                    prev[k] = sub
                else:
                    prev[k] = jcopy(v)
        return prev

    @staticmethod
    def _apply_metadata(o, md):
        if md is None:
            return
        if md == "":
            o["metadata"] = {}
            return
        new = dict(o.get("metadata") or {})
        for k, v in md.items():
            if v == "":
                new.pop(k, None)
            else:
                new[k] = v
        o["metadata"] = new

    # ---------------------------------------------------------------- lists
    @staticmethod
    def _pop_str(q, name):
        v = q.pop(name, None)
        if v is None or v == "":
            return None
        if name == "types":
            if isinstance(v, str):
                return [v]
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
            raise invalid("Invalid array", param=name)
        if not isinstance(v, str):
            raise invalid("Invalid string: %s must be a string" % name, param=name)
        return v

    def _list(self, ctx, q, type_, url, index=None, pred=None, owner_check=True):
        p = validate(q, LIST_SPEC)
        limit = p.get("limit", 10)
        if limit < 1 or limit > 100:
            raise ApiError(
                400,
                "This value must be between 1 and 100 (it currently is %d)." % limit,
                code="parameter_invalid_integer",
                param="limit",
            )
        if index is not None:
            cand = self.idx.get((type_,) + index, [])
        else:
            cand = self.order[type_]
        created = p.get("created")
        sa, eb = p.get("starting_after"), p.get("ending_before")
        acct = ctx.account

        def ok(oid):
            o = self.objects.get(oid)
            if o is None or o.get("deleted"):
                return None
            if owner_check and self.owner.get(oid) != acct:
                return None
            if created:
                c = o.get("created", 0)
                if "eq" in created and c != created["eq"]:
                    return None
                if "gt" in created and not c > created["gt"]:
                    return None
                if "gte" in created and not c >= created["gte"]:
                    return None
                if "lt" in created and not c < created["lt"]:
                    return None
                if "lte" in created and not c <= created["lte"]:
                    return None
            if pred is not None and not pred(o):
                return None
            return o

        out = []
        if eb:
            if eb not in self.seqno:
                raise not_found(type_, eb, "ending_before", 400)
            pivot = self.seqno[eb]
            for oid in cand:
                if self.seqno[oid] <= pivot:
                    continue
                o = ok(oid)
                if o is not None:
                    out.append(o)
                    if len(out) > limit:
                        break
            has_more = len(out) > limit
            out = list(reversed(out[:limit]))
        else:
            pivot = None
            if sa:
                if sa not in self.seqno:
                    raise not_found(type_, sa, "starting_after", 400)
                pivot = self.seqno[sa]
            for oid in reversed(cand):
                if pivot is not None and self.seqno[oid] >= pivot:
                    continue
                o = ok(oid)
                if o is not None:
                    out.append(o)
                    if len(out) > limit:
                        break
            has_more = len(out) > limit
            out = out[:limit]
        return {"object": "list", "data": [self._out(o) for o in out], "has_more": has_more, "url": url}

    # ---------------------------------------------------------------- expand
    def _expand(self, o, paths):
        for path in paths:
            o = self._expand_path(o, path.split("."), path, 0)
        return o

    def _bank_account(self, ba_id):
        """A connected account's bank account (a payout's destination), found through its account."""
        owner = self.objects.get(self.internal.get(ba_id, {}).get("account") or "")
        for bank in (owner or {}).get("external_accounts", {}).get("data", []):
            if bank["id"] == ba_id:
                return bank
        return None

    def _expandable_list(self, o, key):
        """Lists Stripe leaves out unless expanded: a charge's refunds, a customer's sources."""
        if o.get("object") == "charge" and key == "refunds":
            items = [self.objects[r] for r in reversed(self.idx.get(("refund", "charge", o["id"]), ()))]
            url = "/v1/charges/%s/refunds" % o["id"]
        elif o.get("object") == "customer" and key == "sources":
            items, url = [], "/v1/customers/%s/sources" % o["id"]
        else:
            return None
        return {
            "object": "list",
            "data": [self._out(x) for x in items[:10]],
            "has_more": len(items) > 10,
            "total_count": len(items),
            "url": url,
        }

    def _expand_path(self, o, segs, full, depth):
        if not segs:
            return o
        if depth > 4:
            raise invalid("You cannot expand more than 4 levels of a property (%s)." % full, param="expand")
        if isinstance(o, dict) and o.get("object") == "list" and segs[0] == "data" and "data" in o:
            new = dict(o)
            new["data"] = [self._expand_path(x, segs[1:], full, depth + 1) for x in o["data"]]
            return new
        key = segs[0]
        if isinstance(o, dict) and key not in o:
            listed = self._expandable_list(o, key)
            if listed is not None:
                new = dict(o)
                new[key] = self._expand_path(listed, segs[1:], full, depth + 1) if segs[1:] else listed
                return new
        if not isinstance(o, dict) or key not in o:
            raise invalid("This property cannot be expanded (%s)." % full, param="expand")
        v = o[key]
        if v is None:
            return o
        if isinstance(v, str):
            target = self.objects.get(v)
            if target is None and v.startswith("ba_"):
                target = self._bank_account(v)
            if target is None:
                if v == self.platform_account["id"]:
                    target = self.platform_account
                elif v.split("_", 1)[0] in PREFIX_TYPE:
                    return o
                else:
                    raise invalid("This property cannot be expanded (%s)." % full, param="expand")
            v = self._out(target)
        elif isinstance(v, list):
            if len(segs) == 1 and all(isinstance(x, str) for x in v):
                v = [self._out(self.objects[x]) if x in self.objects else x for x in v]
                new = dict(o)
                new[key] = v
                return new
            if len(segs) == 1:
                return o
            raise invalid("This property cannot be expanded (%s)." % full, param="expand")
        elif not isinstance(v, dict):
            raise invalid("This property cannot be expanded (%s)." % full, param="expand")
        new = dict(o)
        new[key] = self._expand_path(v, segs[1:], full, depth + 1)
        return new
