"""sparkplane: a self-hosted control plane for Apache Spark."""

__version__ = "0.1.0"
