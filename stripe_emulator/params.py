"""Form decoding (Stripe's bracket syntax) and parameter validation."""

import re
import urllib.parse


class ApiError(Exception):
    def __init__(
        self,
        status,
        message,
        type="invalid_request_error",
        code=None,
        param=None,
        decline_code=None,
        extra=None,
        headers=None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        self.headers = headers or []

    def body(self):
        err = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = "https://stripe.com/docs/error-codes/%s" % self.code.replace("_", "-")
        if self.param is not None:
            err["param"] = self.param
        if self.decline_code is not None:
            err["decline_code"] = self.decline_code
        err.update(self.extra)
        return {"error": err}


def invalid(message, param=None, code=None, status=400):
    return ApiError(status, message, code=code, param=param)


_KEY_RE = re.compile(r"\[([^\[\]]*)\]")


def _split_key(key):
    i = key.find("[")
    if i < 0:
        return [key]
    head = key[:i]
    rest = key[i:]
    parts = [head]
    pos = 0
    for m in _KEY_RE.finditer(rest):
        if m.start() != pos:
            raise invalid("Invalid parameter name: %s" % key, param=key)
        parts.append(m.group(1))
        pos = m.end()
    if pos != len(rest):
        raise invalid("Invalid parameter name: %s" % key, param=key)
    return parts


def _listify(node):
    if isinstance(node, dict):
        for k in list(node.keys()):
            node[k] = _listify(node[k])
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
        return node
    if isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def decode_form(raw):
    """Decode ``a[b][0]=x&e[]=1`` into nested dicts/lists of strings."""
    if not raw:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    out = {}
    for key, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
        if "[" not in key:
            if key in out and isinstance(out[key], (dict, list)):
                raise invalid("Invalid value for %s: conflicting parameter types" % key, param=key)
            out[key] = value
            continue
        parts = _split_key(key)
        node = out
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            nxt_append = (not last) and parts[i + 1] == ""
            if last:
                if p == "":
                    raise invalid("Invalid parameter name: %s" % key, param=key)
                if isinstance(node, list):
                    node.append(value)
                else:
                    node[p] = value
                break
            if isinstance(node, list):
                raise invalid("Invalid parameter name: %s" % key, param=key)
            child = node.get(p)
            if nxt_append:
                if child is None:
                    child = node[p] = []
                elif not isinstance(child, list):
                    raise invalid("Invalid array: %s" % key, param=parts[0])
                if i + 1 == len(parts) - 1:
                    child.append(value)
                    break
                raise invalid("Invalid parameter name: %s" % key, param=key)
            if child is None:
                child = node[p] = {}
            elif not isinstance(child, dict):
                raise invalid("Invalid value for %s: conflicting parameter types" % parts[0], param=parts[0])
            node = child
    return _listify(out)


# --- specs -------------------------------------------------------------------
# A spec is one of: "str", "int", "bool", "metadata", "strlist", "any", "ts"
# ("enum", (values...)), ("obj", {field: spec}), ("list", spec),
# ("id", "customer") - a string id.

INT = "int"
STR = "str"
BOOL = "bool"
META = "metadata"
STRLIST = "strlist"
ANY = "any"
TSFILTER = "ts"


def enum(*values):
    return ("enum", values)


def obj(**fields):
    return ("obj", fields)


def listof(spec):
    return ("list", spec)


def _join(prefix, name):
    return "%s[%s]" % (prefix, name) if prefix else name


def _validate_value(value, spec, name):
    if spec == ANY:
        return value
    if isinstance(spec, tuple) and spec[0] == "obj":
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid("Invalid object", param=name)
        return validate(value, spec[1], name)
    if isinstance(spec, tuple) and spec[0] == "list":
        if value == "":
            return []
        if isinstance(value, dict):
            raise invalid("Invalid array", param=name)
        if not isinstance(value, list):
            raise invalid("Invalid array", param=name)
        return [_validate_value(v, spec[1], "%s[%d]" % (name, i)) for i, v in enumerate(value)]
    if spec == META:
        if value == "":
            return ""  # clear all
        if not isinstance(value, dict):
            raise invalid("Invalid object", param=name)
        for k, v in value.items():
            if not isinstance(v, str):
                raise invalid("Invalid value for metadata key %s" % k, param="%s[%s]" % (name, k))
            if len(k) > 40:
                raise invalid("Metadata keys can have up to 40 characters", param="%s[%s]" % (name, k))
            if len(v) > 500:
                raise invalid("Metadata values can have up to 500 characters", param="%s[%s]" % (name, k))
        if len(value) > 50:
            raise invalid("You can have up to 50 metadata keys", param=name)
        return value
    if spec == STRLIST:
        if value == "":
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid("Invalid array", param=name)
        return value
    if spec == TSFILTER:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k not in ("gt", "gte", "lt", "lte"):
                    raise ApiError(
                        400,
                        "Received unknown parameter: %s[%s]" % (name, k),
                        code="parameter_unknown",
                        param="%s[%s]" % (name, k),
                    )
                out[k] = _validate_value(v, INT, "%s[%s]" % (name, k))
            return out
        return {"eq": _validate_value(value, INT, name)}
    if isinstance(value, (dict, list)):
        raise invalid("Invalid %s: expected a scalar value" % name, param=name)
    if spec == STR:
        return value
    if spec == INT:
        v = value.strip()
        if not re.fullmatch(r"[+-]?\d+", v):
            raise ApiError(400, "Invalid integer: %s" % value, code="parameter_invalid_integer", param=name)
        return int(v)
    if spec == BOOL:
        v = value.strip().lower()
        if v in ("true", "1"):
            return True
        if v in ("false", "0", ""):
            return False
        raise ApiError(400, "Invalid boolean: %s" % value, param=name)
    if isinstance(spec, tuple) and spec[0] == "enum":
        if value == "" and None in spec[1]:
            return None
        if value not in spec[1]:
            allowed = [v for v in spec[1] if v is not None]
            raise ApiError(400, "Invalid %s: must be one of %s" % (name, ", ".join(allowed)), param=name)
        return value
    raise AssertionError("bad spec %r" % (spec,))


def validate(params, spec, prefix=""):
    out = {}
    for k, v in params.items():
        if k not in spec:
            if not prefix and k == "expand":
                continue
            pname = _join(prefix, k)
            raise ApiError(400, "Received unknown parameter: %s" % pname, code="parameter_unknown", param=pname)
        out[k] = _validate_value(v, spec[k], _join(prefix, k))
    return out


def require(params, *names):
    for n in names:
        v = params.get(n)
        if v is None or v == "":
            raise ApiError(400, "Missing required param: %s." % n, code="parameter_missing", param=n)


LIST_SPEC = {"limit": INT, "starting_after": STR, "ending_before": STR, "created": TSFILTER, "expand": STRLIST}
