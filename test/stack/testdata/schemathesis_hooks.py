"""Schemathesis hooks of TestOpenAPI_Schemathesis (test/stack/schemathesis_test.go).

OpenAPI describes each parameter on its own. Three rules of the services relate two
parameters, and the documents can only say them in words: a time range's until must be after
its since (GET /v1/events, GET /v1/audit), a version range's to must not be below its from
(GET /v1/streams/{stream_id}/events), and a state is asked for at a version or at a time, not
both (the writer's GET /v1/users/{id} and GET /v1/orders/{id}). One relates array elements:
an order's items have distinct ids (POST /v1/orders). The servers answer a request that breaks
one with 400, as they should; the fuzzer is kept from sending those.

An Idempotency-Key sent again with another request is refused with 422
idempotency_key_reused, by design; the fuzzer draws the same short keys again and again. A
valid key it draws is replaced by a fresh one, still valid, so that every command has its own.

A read model's wait may be up to 30 seconds, and the fuzzer asks for rows that do not exist:
a wait it draws is shortened to 20ms, still a valid wait, so that the run stays short.

The writer's live feed, GET /v1/subscribe, is a stream that stays open until the client leaves
unless its wait bounds it: a request without a wait would never be answered in full, and the
fuzzer would wait for it until its request timeout. Every request to it is given wait=20ms when
it has none, so that each stream opens, says where it starts and ends; what the fuzzer draws for
the other parameters and headers is sent as drawn.

A command the fuzzer made of valid data may still break a rule of the domain that depends on
what is stored (schemathesis.toml lists the commands that can, and why). The check
rule_violation_on_valid_data holds such a 422 to RULES_ON_VALID_DATA: the writer's
rule_violation, with a rule that the operation can break on valid data.
"""

import re
import uuid
from datetime import datetime

import schemathesis

# The rules each command can break on schema-valid data, by (method, path): those of
# internal/domain that depend on the stored state (the command's aggregate, or the order's user).
RULES_ON_VALID_DATA = {
    ("POST", "/v1/users"): {"user_already_exists"},
    ("POST", "/v1/users/{id}/deactivate"): {"user_already_deactivated"},
    ("PATCH", "/v1/users/{id}"): {"user_personal_data_erased"},
    ("POST", "/v1/orders"): {"order_already_exists", "user_not_found", "user_deactivated"},
    ("POST", "/v1/orders/{id}/items"): {"order_not_modifiable", "item_already_in_order", "too_many_items", "total_overflow"},
    ("DELETE", "/v1/orders/{id}/items/{item_id}"): {"order_not_modifiable", "item_not_in_order"},
    ("POST", "/v1/orders/{id}/confirm"): {"order_already_confirmed", "order_cancelled", "order_has_no_items"},
    ("POST", "/v1/orders/{id}/cancel"): {"order_already_cancelled", "order_already_shipped"},
    ("POST", "/v1/orders/{id}/ship"): {"order_already_shipped", "order_cancelled", "order_not_confirmed"},
}

IDEMPOTENCY_KEY = re.compile(r"^[!-~]([ -~]*[!-~])?$")

WAIT = re.compile(r"^(0|([0-9]|[12][0-9])(\.[0-9]{1,3})?s|30(\.0{1,3})?s|([0-9]{1,4}|[12][0-9]{4}|30000)ms)$")


def _one(query, name):
    v = query.get(name)
    if isinstance(v, list):
        return v[0] if len(v) == 1 else None
    return v


def _time(s):
    try:
        return datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(s):
    try:
        return int(str(s))
    except ValueError:
        return None


@schemathesis.hook
def filter_case(ctx, case):
    q = case.query or {}
    since, until = _time(_one(q, "since")), _time(_one(q, "until"))
    if since is not None and until is not None:
        try:
            if until <= since:
                return False
        except TypeError:  # one naive, one aware: not a valid pair anyway
            pass
    lo, hi = _int(_one(q, "from")), _int(_one(q, "to"))
    if lo is not None and hi is not None and hi < lo:
        return False
    if case.operation.method.upper() == "GET" and "version" in q and "at" in q:
        return False
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        ids = [it.get("id") for it in body["items"] if isinstance(it, dict)]
        if len(ids) != len(set(map(repr, ids))):
            return False
    return True


@schemathesis.hook
def map_case(ctx, case):
    if case.operation.method.upper() == "GET" and case.operation.path == "/v1/subscribe":
        if case.query is None:
            case.query = {}
        case.query.setdefault("wait", "20ms")
    q = case.query
    if q and isinstance(q.get("wait"), str) and WAIT.match(q["wait"]):
        q["wait"] = "20ms"
    h = case.headers
    if h:
        for name in h:
            if name.lower() == "idempotency-key" and isinstance(h[name], str) and IDEMPOTENCY_KEY.match(h[name]) and len(h[name]) <= 200:
                h[name] = uuid.uuid4().hex
    return case


@schemathesis.check
def rule_violation_on_valid_data(ctx, response, case):
    """A 422 to valid data is rule_violation with a rule the operation can break on valid data."""
    if response.status_code != 422 or case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    label = f"{case.operation.method.upper()} {case.operation.path}"
    allowed = RULES_ON_VALID_DATA.get((case.operation.method.upper(), case.operation.path), set())
    try:
        error = response.json()["error"]
        code, rule = error.get("code"), error.get("rule")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AssertionError(f"{label} answered valid data with 422 without the error envelope")
    if code != "rule_violation" or rule not in allowed:
        raise AssertionError(
            f"{label} answered valid data with 422 {code} (rule {rule!r}); "
            f"the rules it can break on valid data: {', '.join(sorted(allowed)) or 'none'}"
        )
    return None
