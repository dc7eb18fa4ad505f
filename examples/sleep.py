"""A batch that sleeps inside a Spark task, for cancel tests: it holds a driver, a Python worker and a task.

Usage: spark-submit examples/sleep.py [seconds]
"""

from __future__ import annotations

import sys
import time

from pyspark.sql import SparkSession


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    spark = SparkSession.builder.appName("PythonSleep").getOrCreate()
    try:
        print(f"sleeping for {seconds:g} seconds inside a task", flush=True)
        spark.sparkContext.parallelize([seconds], 1).foreach(time.sleep)
        print("done sleeping")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
