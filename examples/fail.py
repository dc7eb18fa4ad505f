"""A batch that fails on purpose: it raises, so spark-submit exits with a non-zero code.

It does not start a SparkSession: the failure path needs no executors, and a JVM less keeps tests fast.
"""

from __future__ import annotations


def main() -> None:
    raise RuntimeError("this batch fails on purpose")


if __name__ == "__main__":
    main()
