"""Users' own data-source credentials: the kinds as data, their validation, and the Spark confs they become.

Pure: storing and encrypting them is services/credentials.py's job. A kind lists its fields. A secret field is
kept only encrypted and never shown again; a public one (an endpoint, a region) is also kept in clear, so that
a user can tell their credentials apart. No message here ever quotes a secret field's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sparkplane.domain.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An STS session token is one to two thousand characters; anything far longer is a mistake.
MAX_VALUE_CHARS = 4096
# A session or batch asks for a handful at most; the bound keeps one request from costing many decryptions.
MAX_PER_REQUEST = 20


@dataclass(frozen=True, slots=True)
class CredentialField:
    name: str
    secret: bool
    required: bool = False
    # Extra checks of a public field's value; messages may quote it, since it is not a secret.
    check: Callable[[str, str], None] | None = None


@dataclass(frozen=True, slots=True)
class CredentialKind:
    name: str
    fields: tuple[CredentialField, ...]
    # The Spark confs a credential of this kind becomes, from its validated fields.
    spark_conf: Callable[[Mapping[str, str]], dict[str, str]]
    # What the confs apply to, from the public fields only: two credentials with one scope would overwrite
    # each other's confs, so a session may not ask for both.
    scope: Callable[[Mapping[str, str]], str]

    def validate(self, values: Mapping[str, object]) -> dict[str, str]:
        """The fields, checked and stripped; InvalidInput naming the first wrong field."""
        known = {f.name: f for f in self.fields}
        for name in values:
            if name not in known:
                raise InvalidInput(f"fields.{name} is not a field of a {self.name} credential; {self._field_list()}")
        checked: dict[str, str] = {}
        for spec in self.fields:
            value = values.get(spec.name)
            if value is None:
                if spec.required:
                    raise InvalidInput(f"fields.{spec.name} is required for a {self.name} credential")
                continue
            checked[spec.name] = _checked_value(spec, value)
        return checked

    def public(self, values: Mapping[str, str]) -> dict[str, str]:
        """The fields that may be kept in clear and shown."""
        secret = {f.name for f in self.fields if f.secret}
        return {name: value for name, value in values.items() if name not in secret}

    def _field_list(self) -> str:
        required = [f.name for f in self.fields if f.required]
        optional = [f.name for f in self.fields if not f.required]
        return f"required: {', '.join(required)}; optional: {', '.join(optional)}"


def _checked_value(spec: CredentialField, value: object) -> str:
    where = f"fields.{spec.name}"
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{where} must not be empty")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidInput(f"{where} is longer than {MAX_VALUE_CHARS} characters")
    if _CONTROL.search(value):
        # A line break could start a second entry in the properties file the confs travel in.
        raise InvalidInput(f"{where} must not contain line breaks or other control characters")
    if spec.check is not None:
        spec.check(where, value)
    return value


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"credential name '{name[:80]}' is not valid: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter"
        )
    return name


def check_requested(names: object) -> list[str]:
    """The credential names a session or batch asks for: valid, each once, in the order given."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise InvalidInput("credentials must be a list of credential names")
    unique = list(dict.fromkeys(names))
    if len(unique) > MAX_PER_REQUEST:
        raise InvalidInput(f"credentials lists {len(unique)} names; at most {MAX_PER_REQUEST} are allowed")
    for name in unique:
        check_name(name)
    return unique


def kind_named(name: str) -> CredentialKind:
    kind = KINDS.get(name)
    if kind is None:
        raise InvalidInput(f"kind '{name[:40]}' is not a credential kind; use one of {', '.join(sorted(KINDS))}")
    return kind


# -- s3 --------------------------------------------------------------------------------------------------------

S3A = "spark.hadoop.fs.s3a."
# Named explicitly so that a refused key never falls back to the machine's own credentials (the environment,
# an instance profile), which are the control plane's and not the user's.
S3A_SIMPLE_PROVIDER = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
S3A_TEMPORARY_PROVIDER = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENDPOINT = re.compile(r"^(?:https?://)?[A-Za-z0-9.-]+(?::\d{1,5})?/?$")


def _check_endpoint(where: str, value: str) -> None:
    if not _ENDPOINT.match(value):
        raise InvalidInput(f"{where} '{value[:200]}' is not an endpoint; use a host[:port] or an http(s):// URL")


def _check_region(where: str, value: str) -> None:
    if not _REGION.match(value):
        raise InvalidInput(f"{where} '{value[:80]}' is not a region name, such as eu-west-1")


def _check_bucket(where: str, value: str) -> None:
    if not _BUCKET.match(value):
        raise InvalidInput(f"{where} '{value[:80]}' is not an S3 bucket name")


def _s3_prefix(values: Mapping[str, str]) -> str:
    # Hadoop's per-bucket settings (fs.s3a.bucket.<name>.*) let one session read buckets of two accounts.
    bucket = values.get("bucket")
    return f"{S3A}bucket.{bucket}." if bucket else S3A


def _s3_conf(values: Mapping[str, str]) -> dict[str, str]:
    prefix = _s3_prefix(values)
    conf = {f"{prefix}access.key": values["access_key_id"], f"{prefix}secret.key": values["secret_access_key"]}
    token = values.get("session_token")
    if token:
        conf[f"{prefix}session.token"] = token
    conf[f"{prefix}aws.credentials.provider"] = S3A_TEMPORARY_PROVIDER if token else S3A_SIMPLE_PROVIDER
    if "endpoint" in values:
        conf[f"{prefix}endpoint"] = values["endpoint"]
    if "region" in values:
        conf[f"{prefix}endpoint.region"] = values["region"]
    return conf


def _s3_scope(public: Mapping[str, str]) -> str:
    bucket = public.get("bucket")
    return f"the s3a bucket {bucket}" if bucket else "every s3a bucket"


S3 = CredentialKind(
    name="s3",
    fields=(
        CredentialField("access_key_id", secret=True, required=True),
        CredentialField("secret_access_key", secret=True, required=True),
        CredentialField("session_token", secret=True),  # temporary (STS) credentials
        CredentialField("endpoint", secret=False, check=_check_endpoint),  # an S3-compatible store
        CredentialField("region", secret=False, check=_check_region),
        CredentialField("bucket", secret=False, check=_check_bucket),  # the credential serves this bucket only
    ),
    spark_conf=_s3_conf,
    scope=_s3_scope,
)

KINDS: Mapping[str, CredentialKind] = {kind.name: kind for kind in (S3,)}
