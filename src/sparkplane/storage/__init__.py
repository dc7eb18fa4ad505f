"""Blob storage (`SPARK_BLOB_STORAGE`): uploaded application files and collected logs."""
