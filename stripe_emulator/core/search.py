"""The /search endpoints of charges, customers and PaymentIntents, with Stripe's query language.

Supported: clauses `field:value` (exact, case-insensitive; `null` for an empty field), `field~"text"`
(substring, 3 characters at least), `field>value`, `>=`, `<`, `<=` (numbers: amount, created),
`metadata["key"]:"value"`, `-` before a clause to negate it, and clauses joined by `AND` or by `OR`
(not both, at most 10), as Stripe allows. Results are newest first; `page` takes the `next_page` of
the previous answer. Unlike Stripe, new objects are searchable at once (Stripe's index lags by up to a
minute).
"""

import base64
import re

from ..params import INT, STR, STRLIST, ApiError, invalid, require, validate

SEARCHABLE = {
    "payment_intents": ("payment_intent", ("amount", "created", "currency", "customer", "metadata", "status")),
    "charges": (
        "charge",
        (
            "amount",
            "billing_details.address.postal_code",
            "created",
            "currency",
            "customer",
            "disputed",
            "metadata",
            "payment_intent",
            "payment_method_details.card.brand",
            "payment_method_details.card.exp_month",
            "payment_method_details.card.exp_year",
            "payment_method_details.card.fingerprint",
            "payment_method_details.card.last4",
            "refunded",
            "status",
        ),
    ),
    "customers": ("customer", ("created", "email", "metadata", "name", "phone")),
}
NUMERIC = {"amount", "created", "payment_method_details.card.exp_month", "payment_method_details.card.exp_year"}
MAX_CLAUSES = 10

_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?(?:metadata\[(?P<mq>["'])(?P<mkey>.+?)(?P=mq)\]|(?P<field>[a-z_][a-z0-9_.]*))"""
    r"""(?P<op>:|~|>=|<=|>|<)(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s"']+)\s*"""
)
_JOIN = re.compile(r"(AND|OR)\s+")


def _bad_query(message):
    return invalid("Invalid search query: %s" % message, param="query")


def parse_query(query, fields):
    """[(negate, field, metadata_key, op, value, quoted)], joiner ("AND" or "OR")."""
    clauses, joins, pos = [], set(), 0
    while True:
        m = _CLAUSE.match(query, pos)
        if m is None:
            raise _bad_query("could not read a clause at character %d of %r." % (pos, query))
        field = m.group("field") or "metadata"
        if field not in fields:
            raise _bad_query("the field `%s` is not searchable here (searchable: %s)." % (field, ", ".join(fields)))
        value, op = m.group("value"), m.group("op")
        quoted = value[:1] in ("'", '"')
        if quoted:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if op in (">", "<", ">=", "<=") and field not in NUMERIC:
            raise _bad_query("`%s` only compares with `:` or `~`." % field)
        if op == "~" and len(value) < 3:
            raise _bad_query("a substring search (`~`) needs at least 3 characters.")
        clauses.append((bool(m.group("neg")), field, m.group("mkey"), op, value, quoted))
        pos = m.end()
        if pos >= len(query):
            break
        j = _JOIN.match(query, pos)
        if j is None:
            raise _bad_query("expected AND or OR at character %d." % pos)
        joins.add(j.group(1))
        pos = j.end()
    if len(joins) > 1:
        raise _bad_query("AND and OR cannot be combined in one query.")
    if len(clauses) > MAX_CLAUSES:
        raise _bad_query("at most %d clauses." % MAX_CLAUSES)
    return clauses, (joins.pop() if joins else "AND")


def _field_value(obj, field, mkey):
    if field == "metadata":
        return (obj.get("metadata") or {}).get(mkey)
    value = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict):
        value = value.get("id")
    return value


def _clause_matches(obj, clause):
    negate, field, mkey, op, value, quoted = clause
    actual = _field_value(obj, field, mkey)
    if op == ":" and value == "null" and not quoted:
        hit = actual is None or actual == ""
    elif actual is None:
        hit = False
    elif field in NUMERIC:
        try:
            bound = int(value)
        except ValueError:
            raise _bad_query("`%s` takes a number." % field) from None
        hit = {
            ":": actual == bound,
            ">": actual > bound,
            "<": actual < bound,
            ">=": actual >= bound,
            "<=": actual <= bound,
        }[op]
    elif isinstance(actual, bool):
        hit = str(actual).lower() == value.lower()
    elif op == "~":
        hit = value.lower() in str(actual).lower()
    else:
        hit = str(actual).lower() == value.lower()
    return hit != negate


class SearchMixin:
    def search(self, ctx, q, resource):
        kind, fields = SEARCHABLE[resource]
        p = validate(q, {"query": STR, "limit": INT, "page": STR, "expand": STRLIST})
        require(p, "query")
        limit = p.get("limit", 10)
        if not 1 <= limit <= 100:
            raise ApiError(
                400,
                "This value must be between 1 and 100 (it currently is %d)." % limit,
                code="parameter_invalid_integer",
                param="limit",
            )
        offset = 0
        if p.get("page"):
            try:
                offset = int(base64.urlsafe_b64decode(p["page"].encode()).decode().split(":", 1)[1])
            except (ValueError, IndexError, UnicodeDecodeError):
                raise invalid("Invalid page: %s" % p["page"], param="page") from None
        clauses, joiner = parse_query(p["query"], fields)
        combine = all if joiner == "AND" else any
        hits = []
        for oid in reversed(self.order[kind]):
            o = self.objects.get(oid)
            if o is None or o.get("deleted") or self.owner.get(oid) != ctx.account:
                continue
            if combine(_clause_matches(o, c) for c in clauses):
                hits.append(o)
        page = hits[offset : offset + limit]
        more = len(hits) > offset + limit
        out = {
            "object": "search_result",
            "data": [self._out(o) for o in page],
            "has_more": more,
            "next_page": base64.urlsafe_b64encode(("page:%d" % (offset + limit)).encode()).decode() if more else None,
            "url": "/v1/%s/search" % resource,
        }
        if "total_count" in (p.get("expand") or []):
            out["total_count"] = len(hits)  # the router leaves this "expansion" alone
        return out
