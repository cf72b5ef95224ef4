"""Schemathesis hooks for fieldsync.

tus bodies (application/offset+octet-stream) are raw bytes. Before each call, values the
schema calls valid but that the server judges against *now* or against *this session*
are moved to where a real client would put them. No static schema can state these rules:

- route dates are read within a window around today, and a new activity is not in the
  past: a well-formed date becomes today (or tomorrow, for a new activity);
- device times (`time`, `capturedAt`, `deviceTime`) must be near the server's clock: a
  well-formed one becomes now;
- an Idempotency-Key sent again with another body is refused by design: every well-formed
  key is made unique;
- a sync batch names the session's own device: a well-formed `deviceId` becomes it;
- integers are JSON integers: an integral float (4096.0, which JSON Schema counts as an
  integer) is written as one.

Only values that are already valid are touched, so negative cases stay negative.
"""

import datetime
import os
import re
import uuid

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))

DEVICE = os.environ.get("FIELDSYNC_DEVICE_ID", "")
KEY = re.compile(r"^[\x21-\x7E]{1,255}$")
DEVICE_TIMES = {"time", "capturedAt", "deviceTime"}


def _date(v):
    try:
        return isinstance(v, str) and bool(datetime.date.fromisoformat(v)) and len(v) == 10
    except ValueError:
        return False


def _instant(v):
    try:
        return isinstance(v, str) and datetime.datetime.fromisoformat(v.replace("Z", "+00:00")) is not None
    except ValueError:
        return False


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def _fix(value, key=None, new_activity=False):
    if isinstance(value, dict):
        return {k: _fix(v, k, new_activity) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix(v, key, new_activity) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if key in DEVICE_TIMES and _instant(value):
        return _now()
    if key == "date" and _date(value):
        today = datetime.date.today()
        return str(today + datetime.timedelta(days=1) if new_activity else today)
    if key == "deviceId" and DEVICE and isinstance(value, str):
        return DEVICE
    return value


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    op = case.operation.definition.raw.get("operationId", "")
    if case.headers and KEY.match(str(case.headers.get("Idempotency-Key", ""))):
        case.headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"
    if isinstance(case.query, dict):
        for name in ("dateFrom", "dateTo"):
            if _date(case.query.get(name)):
                case.query[name] = str(datetime.date.today())
    if isinstance(case.path_parameters, dict) and _date(case.path_parameters.get("date")):
        case.path_parameters["date"] = str(datetime.date.today())
    if op in ("syncPush", "createActivity", "setActivityStatus", "grantUpload", "recordLocations",
              "recordParts", "decideApproval") and isinstance(case.body, (dict, list)):
        body = _fix(case.body, new_activity=(op == "createActivity"))
        if op != "syncPush" and isinstance(body, dict) and "deviceId" in case.body:
            body["deviceId"] = case.body["deviceId"]
        case.body = body
