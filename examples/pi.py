"""Estimate Pi by throwing darts at the unit square: the classic PySpark example.

Usage: spark-submit examples/pi.py [partitions]
"""

from __future__ import annotations

import random
import sys
from operator import add

from pyspark.sql import SparkSession


def _inside(_: int) -> int:
    x = random.random() * 2 - 1
    y = random.random() * 2 - 1
    return 1 if x * x + y * y <= 1 else 0


def main() -> None:
    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    n = 100_000 * partitions
    spark = SparkSession.builder.appName("PythonPi").getOrCreate()
    try:
        count = spark.sparkContext.parallelize(range(1, n + 1), partitions).map(_inside).reduce(add)
        print(f"Pi is roughly {4.0 * count / n:f}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
