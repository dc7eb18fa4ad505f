"""Drive sparkplane with the `livy` PyPI client, as any Livy user would, and print a transcript.

    python examples/livy_client.py http://127.0.0.1:8998 admin PASSWORD

Every HTTP exchange the client makes is printed (method, path, status, state), then the results it got.
"""

from __future__ import annotations

import json
import sys
import time

import requests
from http_trace import print_exchange  # beside this file
from livy import LivySession, SessionKind


def main(url: str, user: str, password: str) -> None:
    http = requests.Session()
    http.auth = (user, password)
    http.hooks["response"].append(print_exchange)
    started = time.perf_counter()
    print(f"LivySession.create({url}/livy, kind=pyspark)")
    with LivySession.create(f"{url}/livy", kind=SessionKind.PYSPARK, requests_session=http, echo=False) as session:
        print(f"session {session.session_id} idle after {time.perf_counter() - started:.2f}s")
        print("session.run('1 + 1')")
        print(f"  => {session.run('1 + 1').text!r}")
        code = "squares = spark.sql('SELECT id, id * id AS square FROM range(5) WHERE id >= 3')"
        print(f"session.run({code!r})")
        session.run(code)
        print("session.download('squares')")
        frame = session.download("squares")
        print("  => " + json.dumps(frame.to_dict("list")))
        print("session.run('1/0')")
        try:
            session.run("1/0")
        except Exception as exc:  # the client raises SparkRuntimeError with Livy's ename/evalue
            print(f"  => {type(exc).__name__}: {exc}")
    print("session closed (DELETE)")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
