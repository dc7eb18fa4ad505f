"""What a user asks Spark to run, validated once, independent of any backend or wire format."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sparkplane.domain.errors import InvalidInput

# Spark's own size syntax (JavaUtils.byteStringAs): a number and an optional unit, b k m g t p, with an optional "b".
_MEMORY = re.compile(r"^\d+(?:[kmgtp]b?|b)?$", re.IGNORECASE)
_CONF_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_memory(field_name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not _MEMORY.match(value.strip()):
        raise InvalidInput(f"{field_name} '{value}' is not a memory size; use a number with a unit, such as 512m or 2g")
    return value.strip()


def check_positive(field_name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if value < 1:
        raise InvalidInput(f"{field_name} must be a whole number of at least 1, not {value}")
    return value


def check_conf(conf: Mapping[str, str]) -> dict[str, str]:
    for key in conf:
        if not _CONF_KEY.match(key):
            raise InvalidInput(f"conf key '{key}' is not a Spark configuration name")
    return {k: str(v) for k, v in conf.items()}


@dataclass(frozen=True, slots=True)
class Resources:
    driver_memory: str | None = None
    driver_cores: int | None = None
    executor_memory: str | None = None
    executor_cores: int | None = None
    num_executors: int | None = None

    def __post_init__(self) -> None:
        check_memory("driverMemory", self.driver_memory)
        check_memory("executorMemory", self.executor_memory)
        check_positive("driverCores", self.driver_cores)
        check_positive("executorCores", self.executor_cores)
        check_positive("numExecutors", self.num_executors)


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """A batch as the backend must run it: every file already resolved to a URI the backend can read."""

    file: str
    args: tuple[str, ...] = ()
    class_name: str | None = None
    name: str | None = None
    jars: tuple[str, ...] = ()
    py_files: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    archives: tuple[str, ...] = ()
    conf: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    queue: str | None = None
    proxy_user: str | None = None
