"""Stripe's published types, as a compact schema, and a checker for JSON against it.

The schema (``stripe_types.json`` beside this file) is derived from the TypeScript declarations of the
official Node SDK pinned in ``conformance/package.json`` (``node_modules/stripe/cjs/resources/*.d.ts``):
for every object type the emulator serves, each field's JSON types, whether it may be absent (``?``)
and whether it may be null. Regenerate it after changing the pin (``npm ci`` in ``conformance/`` first):

    .venv/bin/python -m stripe_emulator.tests.stripe_types

Schema format: ``types[Name][field]`` (``field?`` when optional) is a list of alternatives, each one of
``"string" "number" "boolean" "null" "any"`` (any JSON value), ``"object"`` (any JSON object: a
resource outside the emulator's, such as an expanded Invoice), a quoted literal (``"'succeeded'"``, ``"true"``),
``"@Name"`` (an object of type Name), ``"~Name"`` (any subset of Name's fields, TypeScript's
``Partial``), ``{"array": [...]}``, ``{"map": [...]}`` (string keys) or ``{"list": [...]}`` (a
``/v1`` list object). ``objects`` maps an ``object`` value to its type, ``events`` an event type to
the alternatives of its ``data.object`` and ``data.previous_attributes``.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA_PATH = os.path.join(HERE, "stripe_types.json")
NODE_PROJECT = os.path.join(HERE, "conformance")
SDK_DIR = os.path.join(NODE_PROJECT, "node_modules", "stripe")

# The types of the objects the emulator serves (the roots; what they reference comes along).
ROOTS = [
    "Account",
    "AccountLink",
    "Balance",
    "BalanceTransaction",
    "BankAccount",
    "Capability",
    "Card",
    "Charge",
    "Customer",
    "DeletedAccount",
    "DeletedCustomer",
    "Dispute",
    "EventBase",
    "LoginLink",
    "PaymentIntent",
    "PaymentMethod",
    "Payout",
    "Refund",
    "Transfer",
    "TransferReversal",
    "WebhookEndpoint",
]


# -- a small parser for the SDK's generated declaration files ------------------------------------------
_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)|(\d+)|(.))", re.S)


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _tokens(text):
    out = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        lit, ident, num, punct = m.groups()
        if lit is not None:
            out.append(("lit", lit))
        elif ident is not None:
            out.append(("id", ident))
        elif num is not None:
            out.append(("num", num))
        elif punct is not None and not punct.isspace():
            out.append(("p", punct))
    return out


class _Scope:
    """A namespace: its interfaces (name -> list of (field, optional, type-ast)), aliases and children."""

    def __init__(self, name, parent):
        self.name = name
        self.parent = parent
        self.interfaces = {}
        self.extends = {}
        self.aliases = {}
        self.children = {}

    def qualified(self, name):
        return name if not self.name else self.name + "." + name


class _Parser:
    def __init__(self, tokens, scope):
        self.t = tokens
        self.i = 0
        self.scope = scope

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else ("eof", "")

    def take(self, value=None):
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise ValueError("expected %r, got %r at token %d" % (value, tok, self.i))
        self.i += 1
        return tok

    def skip_block(self):
        depth = 0
        while True:
            tok = self.take()
            if tok[1] == "{":
                depth += 1
            elif tok[1] == "}":
                depth -= 1
                if depth == 0:
                    return
            elif tok[0] == "eof":
                return

    def skip_statement(self):
        depth = 0
        while self.peek()[0] != "eof":
            tok = self.take()
            if tok[1] in "{(<[":
                depth += 1
            elif tok[1] in "})>]":
                depth -= 1
            elif tok[1] == ";" and depth <= 0:
                return

    def declarations(self, scope, until_brace=False):
        while True:
            kind, val = self.peek()
            if kind == "eof":
                return
            if until_brace and val == "}":
                self.take()
                return
            if val in ("export", "declare"):
                self.take()
                continue
            if val == "import":
                self.skip_statement()
            elif val == "namespace":
                self.take()
                name = self.take()[1]
                child = scope.children.get(name) or _Scope(scope.qualified(name), scope)
                scope.children[name] = child
                self.take("{")
                self.declarations(child, until_brace=True)
            elif val == "interface":
                self.take()
                name = self.take()[1]
                if self.peek()[1] == "<":
                    self.skip_generic()
                bases = []
                if self.peek()[1] == "extends":
                    self.take()
                    while self.peek()[1] != "{":
                        tok = self.take()
                        if tok[0] == "id":
                            bases.append(tok[1])
                scope.interfaces[name] = self.interface_body()
                scope.extends[name] = bases
            elif val == "type":
                self.take()
                name = self.take()[1]
                if self.peek()[1] == "<":
                    self.skip_generic()
                    self.skip_statement()
                    continue
                self.take("=")
                scope.aliases[name] = self.union()
                if self.peek()[1] == ";":
                    self.take()
            elif val == "class":
                while self.peek()[1] != "{":
                    self.take()
                self.skip_block()
            else:
                self.skip_statement()

    def skip_generic(self):
        depth = 0
        while True:
            tok = self.take()
            if tok[1] == "<":
                depth += 1
            elif tok[1] == ">":
                depth -= 1
                if depth == 0:
                    return

    def interface_body(self):
        self.take("{")
        fields = []
        while self.peek()[1] != "}":
            if self.peek()[1] == "[":  # index signature: [key: string]: T
                self.take("[")
                while self.take()[1] != "]":
                    pass
                self.take(":")
                fields.append(("[key]", False, self.union()))
            else:
                name = self.take()[1]
                optional = False
                if self.peek()[1] == "?":
                    self.take()
                    optional = True
                if self.peek()[1] == "(":  # a method: not data
                    self.skip_statement()
                    continue
                self.take(":")
                fields.append((name, optional, self.union()))
            if self.peek()[1] in (";", ","):
                self.take()
        self.take("}")
        return fields

    # type expressions -> ("union", [...]) of ("lit", "'x'") ("name", "A.B", [args]) ("array", t)
    # ("object", fields)
    def union(self):
        if self.peek()[1] == "|":
            self.take()
        alts = [self.intersection()]
        while self.peek()[1] == "|":
            self.take()
            alts.append(self.intersection())
        return ("union", alts)

    def intersection(self):
        first = self.postfix()
        while self.peek()[1] == "&":
            self.take()
            self.postfix()  # `string & Record<never, never>` (OtherString) is a string
        return first

    def postfix(self):
        t = self.primary()
        while self.peek()[1] == "[" and self.peek(1)[1] == "]":
            self.take()
            self.take()
            t = ("array", t)
        return t

    def primary(self):
        kind, val = self.peek()
        if kind == "lit":
            self.take()
            return ("lit", val)
        if kind == "num":
            self.take()
            return ("name", "number", [])
        if val == "(":
            self.take()
            t = self.union()
            self.take(")")
            return t
        if val == "{":
            return ("object", self.interface_body())
        if kind == "id":
            self.take()
            args = []
            if self.peek()[1] == "<":
                self.take()
                args.append(self.union())
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.union())
                self.take(">")
            return ("name", val, args)
        raise ValueError("unexpected token %r at %d" % (self.peek(), self.i))


def parse_declarations(paths):
    """One global scope with the top-level declarations of every file (the SDK's names are unique)."""
    top = _Scope("", None)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = _strip_comments(f.read())
        _Parser(_tokens(text), top).declarations(top)
    return top


# -- from the parsed declarations to the compact schema ------------------------------------------------
class _Deriver:
    def __init__(self, top):
        self.top = top
        self.types = {}
        self.pending = []

    def lookup(self, scope, dotted):
        """Resolve a (possibly dotted) name as TypeScript does: innermost namespace outwards."""
        head, *rest = dotted.split(".")
        s = scope
        while s is not None:
            found = self._member(s, head, namespace_first=bool(rest))
            if found is not None:
                break
            s = s.parent
        else:
            return None
        kind, owner, name = found
        for part in rest:
            if kind != "ns":
                return None
            found = self._member(owner.children[name], part)
            if found is None:
                return None
            kind, owner, name = found
        return kind, owner, name

    @staticmethod
    def _member(scope, name, namespace_first=False):
        if namespace_first and name in scope.children:
            return "ns", scope, name
        if name in scope.interfaces:
            return "interface", scope, name
        if name in scope.aliases:
            return "alias", scope, name
        if name in scope.children:
            return "ns", scope, name
        return None

    def interface_ref(self, owner, name):
        qualified = owner.qualified(name)
        if qualified not in self.types:
            self.types[qualified] = None  # reserved: filled by drain()
            self.pending.append((owner, name))
        return qualified

    def drain(self):
        while self.pending:
            owner, name = self.pending.pop()
            self.types[owner.qualified(name)] = self.fields_of(owner, name)

    def fields_of(self, owner, name):
        inner = owner.children.get(name, owner)  # an interface's own namespace holds its nested types
        out = {}
        for base in owner.extends.get(name, []):
            found = self.lookup(inner, base)
            if found and found[0] == "interface":
                out.update(self.fields_of(found[1], found[2]))
        for field, optional, ast in owner.interfaces[name]:
            key = field + ("?" if optional else "")
            out.pop(field, None)
            out.pop(field + "?", None)
            out[key] = self.alternatives(inner, ast)
        return out

    def alternatives(self, scope, ast):
        kind = ast[0]
        if kind == "union":
            out = []
            for alt in ast[1]:
                for a in self.alternatives(scope, alt):
                    if a not in out:
                        out.append(a)
            return out
        if kind == "lit":
            return [ast[1]]
        if kind == "array":
            return [{"array": self.alternatives(scope, ast[1])}]
        if kind == "object":
            fields = dict(ast[1] and [(f, a) for f, _, a in ast[1]])
            if list(fields) == ["[key]"]:
                return [{"map": self.alternatives(scope, fields["[key]"])}]
            return ["any"]
        name, args = ast[1], ast[2]
        if name in ("string", "number", "boolean", "null", "any"):
            return [name]
        if name in ("true", "false"):
            return [name]
        if name == "OtherString":
            # the SDK's escape hatch for values Stripe may add later; the emulator must use the declared ones
            return []
        if name in ("unknown", "object"):
            return ["any"]
        if name in ("Decimal", "Stripe.Decimal"):
            return ["string"]  # a decimal is a string in the JSON
        if name == "Array":
            return [{"array": self.alternatives(scope, args[0])}]
        if name in ("ApiList", "ApiListPromise"):
            return [{"list": self.alternatives(scope, args[0])}]
        if name == "Record":
            return [{"map": self.alternatives(scope, args[1])}]
        if name == "Partial":
            return [
                "~" + a[1:] if isinstance(a, str) and a.startswith("@") else a
                for a in self.alternatives(scope, args[0])
            ]
        if name == "Emptyable":
            return ["null", "''"] + self.alternatives(scope, args[0])
        found = self.lookup(scope, name)
        if found is None:
            return ["any"]  # a type outside the parsed files (e.g. a namespaced product)
        kind, owner, local = found
        if kind == "interface":
            if local == "Metadata" and owner is self.top:
                return [{"map": ["string"]}]
            if owner is self.top and local not in ROOTS:
                return ["object"]  # a resource the emulator does not serve: any JSON object will do
            return ["@" + self.interface_ref(owner, local)]
        if kind == "alias":
            return self.alternatives(owner, owner.aliases[local])
        return ["any"]


def derive(sdk_dir=SDK_DIR):
    resources = os.path.join(sdk_dir, "cjs", "resources")
    paths = sorted(os.path.join(resources, n) for n in os.listdir(resources) if n.endswith(".d.ts"))
    paths.append(os.path.join(sdk_dir, "cjs", "shared.d.ts"))
    top = parse_declarations(paths)
    d = _Deriver(top)
    for root in ROOTS:
        d.interface_ref(top, root)
    events = {}
    for name in sorted(top.interfaces):
        if not name.endswith("Event") or top.extends.get(name) != ["EventBase"]:
            continue
        fields = {f: a for f, _, a in top.interfaces[name]}
        if fields.get("type", ("",))[0] != "union" or len(fields["type"][1]) != 1:
            continue
        etype = fields["type"][1][0][1].strip("'")
        data = d.lookup(top.children[name], "Data")
        if data is None:
            continue
        dfields = {f: a for f, _, a in data[1].interfaces[data[2]]}
        obj = d.alternatives(top.children[name], dfields["object"])
        # only the events whose object is one the emulator serves (or may serve): keeps the schema small
        if not all(isinstance(a, str) and a.startswith("@") and a[1:] in ROOTS for a in obj):
            continue
        events[etype] = {"object": obj}
        if "previous_attributes" in dfields:
            events[etype]["previous_attributes"] = d.alternatives(top.children[name], dfields["previous_attributes"])
    d.drain()
    objects = {}
    for qualified, fields in d.types.items():
        alts = fields.get("object") or []
        if "." in qualified or len(alts) != 1 or not alts[0].startswith("'"):
            continue
        key = alts[0].strip("'")
        if "true" in fields.get("deleted", []):
            key = "deleted " + key
        objects.setdefault(key, qualified)
    with open(os.path.join(sdk_dir, "package.json")) as f:
        version = json.load(f)["version"]
    api_version = re.search(r"ApiVersion = '([^']+)'", open(os.path.join(sdk_dir, "cjs", "apiVersion.js")).read())
    return {
        "source": "stripe (npm) %s type declarations, API version %s" % (version, api_version.group(1)),
        "objects": dict(sorted(objects.items())),
        "events": events,
        "types": dict(sorted(d.types.items())),
    }


def load_schema(path=SCHEMA_PATH):
    with open(path) as f:
        return json.load(f)


def dump_schema(schema):
    # one type per line: small diffs when the SDK pin moves
    lines = ["{"]
    for i, key in enumerate(("source", "objects", "events", "types")):
        end = "," if i < 3 else ""
        if key in ("events", "types"):
            lines.append(" %s: {" % json.dumps(key))
            items = list(schema[key].items())
            for j, (name, value) in enumerate(items):
                sep = "," if j < len(items) - 1 else ""
                lines.append("  %s: %s%s" % (json.dumps(name), json.dumps(value, sort_keys=True), sep))
            lines.append(" }" + end)
        else:
            lines.append(" %s: %s%s" % (json.dumps(key), json.dumps(schema[key], sort_keys=True), end))
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- checking JSON against the schema ------------------------------------------------------------------
class Checker:
    """Walks JSON values against the schema and records every difference.

    Kinds: ``missing`` (a required field is absent), ``null`` (null where Stripe allows none),
    ``type`` (a JSON type Stripe does not declare there), ``enum`` (a string outside the declared
    literals), ``extra`` (a field Stripe's types do not have), ``unknown object`` (an ``object`` value
    without a type in the schema).
    """

    def __init__(self, schema):
        self.schema = schema
        self.types = schema["types"]
        self.objects = schema["objects"]
        self.fields_checked = 0
        self.objects_checked = 0
        self.problems = {}  # (kind, where, detail) -> [count, first label]
        self.label = ""

    def _problem(self, kind, path, detail):
        row = self.problems.setdefault((kind, re.sub(r"\[\d+\]", "[]", path), detail), [0, self.label])
        row[0] += 1

    def check_object(self, value, path=None, label=None):
        """A JSON object that carries its own ``object`` name (a resource, a list or a deleted stub).

        Differences are located by type and field (``Charge.transfer``); ``label`` (what served the value)
        is kept as the first example of each.
        """
        if label is not None:
            self.label = label
        if not isinstance(value, dict) or "object" not in value:
            self._problem("type", path or "?", "not a Stripe object: %r" % (value,)[:80])
            return
        if value["object"] == "list":
            self.check(value, [{"list": ["any"]}], path or "list")
            return
        key = ("deleted " if value.get("deleted") is True else "") + value["object"]
        name = self.objects.get(key)
        if name is None:
            self._problem("unknown object", path or key, "no type for object %r" % key)
            return
        self.check(value, ["@" + name], path or name)

    def check(self, value, alts, path, partial=False):
        if value is None:
            if "null" not in alts and "any" not in alts:
                self._problem("null", path, "null; Stripe declares %s" % _describe(alts))
            return
        if "any" in alts:
            return
        if isinstance(value, bool):
            literal = "true" if value else "false"
            if "boolean" not in alts and literal not in alts:
                self._problem("type", path, "boolean; Stripe declares %s" % _describe(alts))
            return
        if isinstance(value, (int, float)):
            if "number" not in alts:
                self._problem("type", path, "number; Stripe declares %s" % _describe(alts))
            return
        if isinstance(value, str):
            if "string" in alts:
                return
            literals = [a for a in alts if isinstance(a, str) and a.startswith("'")]
            if literals:
                if "'%s'" % value not in literals:
                    self._problem("enum", path, "%r not in %s" % (value, _describe(literals)))
                return
            self._problem("type", path, "string; Stripe declares %s" % _describe(alts))
            return
        if isinstance(value, list):
            arrays = [a["array"] for a in alts if isinstance(a, dict) and "array" in a]
            if not arrays:
                self._problem("type", path, "array; Stripe declares %s" % _describe(alts))
                return
            inner = [x for a in arrays for x in a]
            for i, item in enumerate(value):
                self.check(item, inner, "%s[%d]" % (path, i))
            return
        if isinstance(value, dict):
            self._check_dict(value, alts, path)
            return
        self._problem("type", path, "unexpected JSON value %r" % (value,))

    def _check_dict(self, value, alts, path):
        lists = [a["list"] for a in alts if isinstance(a, dict) and "list" in a]
        if lists and value.get("object") == "list":
            self._check_list(value, [x for a in lists for x in a], path)
            return
        refs = [a for a in alts if isinstance(a, str) and a[:1] in "@~"]
        if refs:
            ref = self._choose(value, refs)
            if ref is None and "object" in alts:
                return  # an expanded resource of a kind the emulator does not serve
            ref = ref or refs[0]
            self._check_fields(value, ref[1:], path, partial=ref.startswith("~"))
            return
        maps = [a["map"] for a in alts if isinstance(a, dict) and "map" in a]
        if maps:
            inner = [x for a in maps for x in a]
            for v in value.values():
                self.check(v, inner, "%s{}" % path)
            return
        if "object" not in alts:
            self._problem("type", path, "object; Stripe declares %s" % _describe(alts))

    def _choose(self, value, refs):
        """Of the object types a field allows (`string | Customer | DeletedCustomer`), the one it is."""
        if "object" in value and isinstance(value["object"], str):
            key = ("deleted " if value.get("deleted") is True else "") + value["object"]
            for ref in refs:
                if self.objects.get(key) == ref[1:]:
                    return ref
            return refs[0] if len(refs) == 1 else None
        if len(refs) == 1:
            return refs[0]
        for ref in refs:  # nested shapes without `object`: the first whose fields hold all of the value's
            fields = {f.rstrip("?") for f in self.types.get(ref[1:]) or {}}
            if set(value) <= fields:
                return ref
        return None

    def _check_list(self, value, inner, path):
        self.objects_checked += 1
        for field, want in (("object", ["'list'"]), ("has_more", ["boolean"]), ("url", ["string"])):
            self.fields_checked += 1
            if field not in value:
                self._problem("missing", "%s.%s" % (path, field), "required list field")
            else:
                self.check(value[field], want, "%s.%s" % (path, field))
        self.fields_checked += 1
        if not isinstance(value.get("data"), list):
            self._problem("type", path + ".data", "a list's data is not an array")
            return
        for i, item in enumerate(value["data"]):
            self.check(item, inner, "%s.data[%d]" % (path, i))

    def _check_fields(self, value, name, path, partial=False):
        fields = self.types.get(name)
        if fields is None:
            self._problem("unknown object", path, "type %s not in the schema" % name)
            return
        self.objects_checked += 1
        if not fields:
            return  # an empty interface (an event's `data.object` before its type is known) takes any object
        declared = {}
        for key, alts in fields.items():
            declared[key.rstrip("?")] = (key.endswith("?"), alts)
        if list(declared) == ["[key]"]:
            for v in value.values():
                self.fields_checked += 1
                self.check(v, declared["[key]"][1], "%s{}" % name)
            return
        for field, (optional, alts) in declared.items():
            where = "%s.%s" % (name, field)
            if field not in value:
                if not optional and not partial:
                    self._problem("missing", where, "required by %s" % name)
                continue
            self.fields_checked += 1
            self.check(value[field], alts, where)
        for field in value:
            if field not in declared:
                self._problem("extra", "%s.%s" % (name, field), "not in the SDK's type")

    def check_event(self, event, label="event"):
        """An event: the envelope, then data.object and previous_attributes as the event type says."""
        path = "event"
        self.check_object(event, path, label=label)
        spec = self.schema["events"].get(event.get("type"))
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if spec is None:
            self._problem("unknown event", "%s(%s)" % (path, event.get("type")), "no such event type")
            return
        where = "%s(%s).data" % (path, event["type"])
        if "object" in data:
            self.check(data["object"], spec["object"], where + ".object")
        if "previous_attributes" in data and "previous_attributes" in spec:
            self.check(data["previous_attributes"], spec["previous_attributes"], where + ".previous_attributes")

    def differences(self, kinds=None):
        """Unique (kind, where, detail) rows, list indices folded, sorted."""
        return sorted(p for p in self.problems if kinds is None or p[0] in kinds)

    def report(self, rows):
        """Printable lines: kind, where, detail, how often, and the first response or payload showing it."""
        return [
            "  %-7s %s: %s (x%d, e.g. %s)" % (kind, where, detail, *self.problems[(kind, where, detail)])
            for kind, where, detail in rows
        ]


def _describe(alts):
    out = []
    for a in alts:
        if isinstance(a, dict):
            ((k, v),) = a.items()
            out.append("%s of %s" % (k, _describe(v)))
        else:
            out.append(a)
    return " | ".join(out)


if __name__ == "__main__":
    sdk = sys.argv[1] if len(sys.argv) > 1 else SDK_DIR
    if not os.path.isdir(sdk):
        sys.exit("no %s: run `npm ci` in %s first" % (sdk, NODE_PROJECT))
    schema = derive(sdk)
    with open(SCHEMA_PATH, "w") as f:
        f.write(dump_schema(schema))
    print(
        "%s: %d types, %d object names, %d event types from %s"
        % (SCHEMA_PATH, len(schema["types"]), len(schema["objects"]), len(schema["events"]), schema["source"])
    )
