"""Schemathesis hooks of TestOpenAPI_Schemathesis (test/stack/schemathesis_test.go).

OpenAPI 3.0 describes each parameter on its own. Three rules of the services relate two
parameters, and the documents can only say them in words: a time range's until must be after
its since (GET /v1/events, GET /v1/audit), a version range's to must not be below its from
(GET /v1/streams/{stream_id}/events), and a state is asked for at a version or at a time, not
both (the writer's GET /v1/users/{id} and GET /v1/orders/{id}). One relates array elements:
an order's items have distinct ids (POST /v1/orders). The servers answer a request that breaks
one with 400, as they should; the fuzzer is kept from sending those.

A read model's wait may be up to 30 seconds, and the fuzzer asks for rows that do not exist:
a wait it draws is shortened to 20ms, still a valid wait, so that the run stays short.
"""

import re
from datetime import datetime

import schemathesis

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
    q = case.query
    if q and isinstance(q.get("wait"), str) and WAIT.match(q["wait"]):
        q["wait"] = "20ms"
    return case
