"""The fuzzers' own check and failure filter, shared by tests/integration/test_fuzz_api.py and scripts/fuzz
(which loads this module through SCHEMATHESIS_HOOKS); schemathesis.toml beside it says which checks run.

Every error must be JSON with a message a person can act on: `{"detail": "..."}` on the native face and the
operations routes, `{"msg": "..."}` on the Livy face (api/errors.py, livy-contract.md §1.2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import schemathesis

CONFIG = Path(__file__).with_name("schemathesis.toml")  # which checks run, and the exceptions


@schemathesis.check
def error_has_a_message(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    if response.status_code < 400:
        return
    key = "msg" if case.path.startswith("/livy") else "detail"
    try:
        body: Any = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"a {response.status_code} answer is not JSON: {response.content[:200]!r}") from exc
    message = body.get(key) if isinstance(body, dict) else None
    if not isinstance(message, str) or not message.strip():
        raise AssertionError(f'a {response.status_code} answer has no "{key}" message: {response.content[:200]!r}')


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext, failure: Exception, case: schemathesis.Case, response: schemathesis.Response
) -> bool:
    """Keep every failure but one false positive of negative_data_rejection (ST201).

    JSON Schema counts a number with a zero fraction as an integer, so `?from=0.0` is valid for Livy's integer
    `from`, and the server reads it as 0. Schemathesis' negative mode can send such a number (or a one-element
    list of it, which the query string renders the same) as if it broke the schema, then reports it accepted.
    Dropped only when the query alone was made invalid and every query value is such a number.
    """
    if getattr(failure, "code", None) != "ST201" or case.meta is None:
        return True
    negated = {str(location.value) for location, info in case.meta.components.items() if info.mode.is_negative}
    return not (negated == {"query"} and case.query and all(_integral(v) for v in case.query.values()))


def _integral(value: object) -> bool:
    if isinstance(value, list):
        return len(value) == 1 and _integral(value[0])
    return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
