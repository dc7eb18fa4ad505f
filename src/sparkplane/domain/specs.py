"""What a user asks Spark to run, validated once, independent of any backend or wire format."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sparkplane.domain.errors import InvalidInput

# Spark's own size syntax (JavaUtils.byteStringAs): a number and an optional unit, b k m g t p, with an optional "b".
_MEMORY = re.compile(r"^\d+(?:[kmgtp]b?|b)?$", re.IGNORECASE)
_CONF_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")
# Livy's numeric request fields are Java ints (CreateInteractiveRequest.scala, CreateBatchRequest.scala), and
# sessions keep their timeouts as whole seconds in 32-bit columns: a larger number is refused, as Livy does.
INT32_MAX = 2**31 - 1


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
    if value > INT32_MAX:
        raise InvalidInput(f"{field_name} must be at most {INT32_MAX}, not {value}")
    return value


def check_conf(conf: Mapping[str, str]) -> dict[str, str]:
    for key in conf:
        if not _CONF_KEY.match(key):
            raise InvalidInput(f"conf key '{key}' is not a Spark configuration name")
    return {k: str(v) for k, v in conf.items()}


class SecretConf(Mapping[str, str]):
    """Spark confs whose values are secrets (a user's credentials): a mapping that never shows a value.

    Specs are logged and put into error messages; this type's repr names the keys only, and it is not a dict,
    so `json.dumps` refuses it rather than writing the values somewhere by accident.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "SecretConf({" + ", ".join(f"{key!r}: '***'" for key in self._values) + "})"

    __str__ = __repr__


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
    master: str | None = None  # a cluster's spark:// URL; None: the backend's own master
    # From the user's stored credentials, resolved at launch; never written to a row or a command line.
    secret_conf: SecretConf = field(default_factory=SecretConf)


SESSION_KINDS = ("spark", "pyspark", "sparkr", "sql", "shared")
KIND_ALIASES = {"scala": "spark", "python": "pyspark", "r": "sparkr"}  # Livy's Kind.scala
STATEMENT_KINDS = ("spark", "pyspark", "sparkr", "sql")


def normalize_kind(kind: str | None, *, default: str, allowed: tuple[str, ...], what: str) -> str:
    value = default if kind is None else KIND_ALIASES.get(kind, kind)
    if value not in allowed:
        raise InvalidInput(f"{what} '{kind}' is not one of {', '.join(allowed)} (or scala, python, r)")
    return value


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """An interactive session as the backend must start it: files resolved, kind normalised."""

    kind: str
    name: str | None = None
    jars: tuple[str, ...] = ()
    py_files: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    archives: tuple[str, ...] = ()
    conf: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    queue: str | None = None
    proxy_user: str | None = None
    master: str | None = None  # a cluster's spark:// URL; None: the backend's own master
    secret_conf: SecretConf = field(default_factory=SecretConf)  # as BatchSpec's

    def poolable(self) -> bool:
        """True when a pre-started agent can serve it: nothing that must be set before the driver starts.

        Credentials count: pooled drivers started without them, and Hadoop's S3A settings are read from the
        driver's conf, so a session that carries any gets a cold driver started with them.
        """
        return (
            self.master is None
            and not (self.jars or self.py_files or self.files or self.archives or self.secret_conf)
            and self.resources == Resources()
            and not any(key.startswith(_STATIC_CONF_PREFIXES) for key in self.conf)
        )


# Spark settings read only when the driver JVM starts; a session that sets one needs its own, cold driver.
_STATIC_CONF_PREFIXES = (
    "spark.driver.",
    "spark.executor.",
    "spark.jars",
    "spark.submit.",
    "spark.master",
    "spark.files",
    "spark.archives",
    "spark.pyspark.",
    "spark.memory.",
    "spark.plugins",
    "spark.connect.",
    "spark.ui.",
    "spark.eventLog.",
    "spark.sql.extensions",
    "spark.sql.catalogImplementation",
    "spark.serializer",
    "spark.dynamicAllocation.",
    "spark.shuffle.",
    "spark.cores.max",
    "spark.default.parallelism",
)


_DURATION = re.compile(r"^\s*(\d+)\s*(us|ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(field_name: str, value: str | None) -> float | None:
    """Livy's duration strings (ClientConf.getTimeAsMs): a number and a unit; a bare number is milliseconds."""
    if value is None:
        return None
    match = _DURATION.match(value)
    if not match:
        raise InvalidInput(f"{field_name} '{value}' is not a duration; use a number with a unit, such as 30m, 8h or 1d")
    digits = match.group(1).lstrip("0") or "0"
    # Twenty digits are more than INT32_MAX seconds in any unit; more would not even convert (or fit a float).
    seconds = int(digits) * _UNIT_SECONDS[(match.group(2) or "ms").lower()] if len(digits) <= 20 else float("inf")
    if seconds > INT32_MAX:
        raise InvalidInput(f"{field_name} '{value}' is longer than {INT32_MAX} seconds (about 68 years)")
    return seconds
