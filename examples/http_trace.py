"""A `requests` response hook that prints each HTTP exchange of a client: method, path, body, status, state."""

from __future__ import annotations

import requests


def print_exchange(response: requests.Response, *args: object, **kwargs: object) -> None:
    request = response.request
    body = ""
    if request.body:
        raw = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        body = " " + raw[:100]
    try:
        reply = response.json()
        state = f" state={reply['state']}" if isinstance(reply, dict) and "state" in reply else ""
    except ValueError:
        state = ""
    print(f"  {request.method} {request.path_url}{body} -> {response.status_code}{state}")
