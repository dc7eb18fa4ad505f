"""Drive sparkplane with sparkmagic's Livy client library, as Jupyter's %%spark does, and print a transcript.

    python examples/sparkmagic_client.py http://127.0.0.1:8998 admin PASSWORD

Every HTTP exchange sparkmagic makes is printed (method, path, status, state), then what each command gave.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

from http_trace import print_exchange  # beside this file


class Display:
    """Where sparkmagic writes what a notebook would show: printed, indented."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: print(f"    [{name}] {' '.join(str(a) for a in args)[:200]}")


def main(url: str, user: str, password: str) -> None:
    # sparkmagic's Basic authenticator builds Jupyter widgets with an argument traitlets deprecates.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from sparkmagic.auth.basic import Basic
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.livyclientlib.livysession import LivySession
    from sparkmagic.livyclientlib.sqlquery import SQLQuery

    auth = Basic()
    auth.username, auth.password = user, password
    http = LivyReliableHttpClient.from_endpoint(Endpoint(f"{url}/livy", auth))
    http._http_client._session.hooks["response"].append(print_exchange)  # sparkmagic's own requests session
    started = time.perf_counter()
    print(f"LivySession.start() on {url}/livy, kind=pyspark")
    session = LivySession(http, {"kind": "pyspark"}, Display(), heartbeat_timeout=60)
    session.start()
    print(f"session {session.id} idle after {time.perf_counter() - started:.2f}s")
    try:
        for code in ("1 + 1", "spark.range(7).selectExpr('sum(id) AS s').first()['s']", "1/0"):
            print(f"Command({code!r}).execute(session)")
            success, out, mimetype = Command(code).execute(session)
            print(f"  => success={success} {mimetype}: {out.strip()[:200]!r}")
        Command("spark.range(3).toDF('n').createOrReplaceTempView('numbers')").execute(session)
        query = "SELECT n * 10 AS tens FROM numbers ORDER BY n"
        print(f"SQLQuery({query!r}).execute(session)   # the path of %%sql")
        frame = SQLQuery(query).execute(session)
        print(f"  => {frame.to_dict('list')}")
    finally:
        session.delete()
        http._http_client._session.close()  # sparkmagic never closes its requests session itself
    print("session deleted")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
