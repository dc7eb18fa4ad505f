"""What the fuzzers hold every answer of sparkplane to, shared by tests/integration/test_fuzz_api.py and
scripts/fuzz (which loads this module through SCHEMATHESIS_HOOKS).

Besides schemathesis' own checks (no 5xx; status, content type, headers and body as the schema says), every
error must be JSON with a message a person can act on: `{"detail": "..."}` on the native face and the
operations routes, `{"msg": "..."}` on the Livy face (api/errors.py, livy-contract.md §1.2).
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "error_has_a_message",
)


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


def config() -> dict[str, Any]:
    """The schemathesis configuration of the in-process test: these checks and no others (scripts/fuzz
    passes the same list to the CLI)."""
    return {"checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}}
