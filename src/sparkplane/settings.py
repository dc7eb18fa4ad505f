"""Settings, read once from the environment (and a secrets folder) and injected; never read at import.

The DataRobot deployment guide's variable names keep their names (SPARK_*, AWS_*, GCP_*, AZURE_*, PGSQL_*,
RABBITMQ_*); everything else is SPARKPLANE_*. Secrets are `SecretStr`, and may come from files named like the
variable in `SPARKPLANE_SECRETS_DIR` (a mounted Kubernetes Secret).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _seed(name: str, description: str, default: Any = None) -> Any:
    """A field read from the seed's own variable name, with no SPARKPLANE_ prefix."""
    return Field(default=default, validation_alias=AliasChoices(name), description=description)


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "sparkplane"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SPARKPLANE_", env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    environment: Literal["embedded", "production"] = Field(
        default="embedded", description="production refuses embedded-only defaults (SQLite, generated keys)"
    )
    data_dir: Path = Field(default_factory=default_data_dir, description="Where embedded mode keeps its files")
    host: str = Field(default="127.0.0.1", description="Address the API binds")
    port: int = Field(default=8998, description="Port the API binds (Livy's)")
    api_workers: int = Field(
        default=1, ge=1, le=64, description="Processes of the api role that share its port (one per core is a start)"
    )
    token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="An api process trusts an API token or Basic credentials it checked this recently without "
        "asking the database; a revoke, new password or disable made in another process takes this long to bite "
        "(0: check every request)",
    )
    public_url: str | None = Field(default=None, description="URL users reach the API at, for links")
    log_level: str = Field(default="INFO", description="Python log level of every role")
    log_format: Literal["json", "console"] = Field(default="json", description="json for machines")

    # --- database: a URL, or the seed's parts -------------------------------------------------------------
    database_url: SecretStr | None = Field(default=None, description="SQLAlchemy URL; overrides PGSQL_*")
    pgsql_host: str | None = _seed(
        "PGSQL_HOST", "PostgreSQL host; set it to use PostgreSQL instead of the embedded SQLite"
    )
    pgsql_port: int = _seed("PGSQL_PORT", "PostgreSQL port", 5432)
    pgsql_user: str | None = _seed("PGSQL_USER", "PostgreSQL user (postgres when unset)")
    pgsql_database: str | None = _seed(
        "PGSQL_DATABASE", "PostgreSQL database, used exclusively, public schema (sparkplane when unset)"
    )
    pgsql_connection_options: str = _seed(
        "PGSQL_CONNECTION_OPTIONS", "Extra URI options, e.g. ?sslmode=require&connect_timeout=5", ""
    )
    pgsql_password: SecretStr | None = _seed("PGSQL_PASSWORD", "PostgreSQL password")

    # --- queue: a URL, or the seed's parts --------------------------------------------------------------------
    broker_url: SecretStr | None = Field(default=None, description="Celery broker URL; overrides RABBITMQ_*")
    rabbitmq_host: str | None = _seed(
        "RABBITMQ_HOST", "RabbitMQ host; set it to use RabbitMQ instead of the embedded SQL broker"
    )
    rabbitmq_port: int = _seed("RABBITMQ_PORT", "RabbitMQ AMQP port", 5672)
    rabbitmq_admin_port: int = _seed("RABBITMQ_ADMIN_PORT", "RabbitMQ management port", 15672)
    rabbitmq_scheme: Literal["amqp", "amqps"] = _seed("RABBITMQ_SCHEME", "amqp, or amqps for TLS", "amqp")
    rabbitmq_user: str | None = _seed("RABBITMQ_USER", "RabbitMQ user (guest when unset)")
    rabbitmq_vhost: str = _seed("RABBITMQ_VHOST", "RabbitMQ vhost, used exclusively", "/")
    rabbitmq_password: SecretStr | None = _seed("RABBITMQ_PASSWORD", "RabbitMQ password")

    # --- users -------------------------------------------------------------------------------------------------
    admin_password: SecretStr | None = Field(
        default=None, description="Password of the first admin; generated and printed once when unset"
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key that encrypts users' stored credentials; embedded mode generates one into "
        "the data folder when unset",
    )
    encryption_old_keys: SecretStr | None = Field(
        default=None,
        description="Earlier encryption keys, comma-separated: they still decrypt, never encrypt "
        "(after a key change, `sparkplane db reencrypt` moves every credential to the new key)",
    )

    # --- data plane ------------------------------------------------------------------------------------------
    backend: Literal["local", "fake"] = Field(
        default="local", description="Backend that runs new batches (fake: in-memory, for tests and load runs)"
    )
    spark_master: str = Field(default="local[*]", description="Spark master of the local backend")
    spark_submit: Path | None = Field(
        default=None,
        description="Command the local backend launches batches with; unset: spark-submit of SPARK_HOME "
        "(or of the installed pyspark)",
    )
    cluster_provider: Literal["local", "ec2", "fake"] = Field(
        default="local", description="Where new clusters' machines come from (fake: in-memory, for tests)"
    )
    local_cluster_memory_mb: int | None = Field(
        default=None, ge=256, description="Memory the local provider lets workers promise in all; unset: half the RAM"
    )
    cluster_start_timeout_seconds: float = Field(
        default=300.0, description="A cluster whose master and workers are not up after this long ends in ERROR"
    )
    autoscale_down_after_seconds: float = Field(
        default=120.0, description="An autoscaling cluster stops a worker that ran no executor for this long"
    )
    executor_idle_timeout_seconds: float = Field(
        default=30.0, description="Sessions on autoscaling clusters release an executor idle this long"
    )
    spark_blob_storage: str | None = _seed(
        "SPARK_BLOB_STORAGE", "Where uploaded files and collected logs live (a local folder in embedded mode)"
    )
    spark_customer_iam_role: str | None = _seed(
        "SPARK_CUSTOMER_IAM_ROLE", "Role the cloud backends assume in the customer's account"
    )
    spark_network_aws_subnet_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("SPARK_NETWORK_AWS_SUBNET_IDS"),
        description='Subnets for cloud runs, as JSON (["subnet-1"]) or comma-separated',
    )
    spark_network_aws_security_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("SPARK_NETWORK_AWS_SECURITY_GROUPS"),
        description="Security groups for cloud runs, as JSON or comma-separated",
    )
    aws_default_region: str | None = _seed("AWS_DEFAULT_REGION", "AWS region of the cloud backends")
    gcp_dataproc_project_id: str | None = _seed(
        "GCP_DATAPROC_PROJECT_ID", "Google project for Dataproc Serverless batches"
    )
    gcp_dataproc_region: str | None = _seed("GCP_DATAPROC_REGION", "Region for Dataproc Serverless batches")
    gcp_dataproc_network: str | None = _seed("GCP_DATAPROC_NETWORK", "Network Dataproc batches run in")
    gcp_dataproc_subnet: str | None = _seed("GCP_DATAPROC_SUBNET", "Subnetwork Dataproc batches run in")
    azure_workspace_host: str | None = _seed("AZURE_WORKSPACE_HOST", "Databricks workspace URL for Azure batches")
    azure_subscription_id: str | None = _seed(
        "AZURE_SUBSCRIPTION_ID", "Azure subscription of the managed identity and storage"
    )
    azure_resource_group_name: str | None = _seed(
        "AZURE_RESOURCE_GROUP_NAME", "Azure resource group of the managed identity and storage"
    )
    azure_client_id: str | None = _seed("AZURE_CLIENT_ID", "Client id of the Azure managed identity")
    aws_endpoint_url: str | None = Field(
        default=None, description="Endpoint for every STS and EC2 call instead of AWS's own (a stand-in such as moto)"
    )
    ec2_ami_id: str | None = Field(
        default=None, description="AMI the ec2 cluster provider starts nodes from (Java 17, Spark, curl; see docs)"
    )
    ec2_external_id: SecretStr | None = Field(
        default=None, description="External id that the trust policy of SPARK_CUSTOMER_IAM_ROLE requires"
    )
    ec2_instance_profile: str | None = Field(
        default=None, description="Instance profile (name or ARN) of the nodes; unset: nodes have no AWS credentials"
    )
    ec2_key_name: str | None = Field(default=None, description="EC2 key pair for SSH to the nodes; unset: none")
    ec2_spark_home: str = Field(default="/opt/spark", description="Where Spark is installed on the AMI")
    ec2_max_nodes: int | None = Field(
        default=None, ge=1, description="Most nodes the ec2 provider runs at once, all clusters together; unset: none"
    )

    # --- web UI ----------------------------------------------------------------------------------------------
    web_login_idle_seconds: float = Field(
        default=12 * 3600.0, gt=0, description="A web login unused for this long ends (the browser must log in again)"
    )
    web_login_max_seconds: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="A web login ends this long after it began, used or not"
    )
    web_cookie_secure: bool = Field(
        default=False,
        description="Mark the web UI's cookies Secure (sent over HTTPS only); turn on behind TLS",
    )

    # --- limits and loops ----------------------------------------------------------------------------------
    max_body_bytes: int = Field(default=1_048_576, description="Largest JSON request body")
    max_upload_bytes: int = Field(default=200 * 1_048_576, description="Largest uploaded application file")
    max_notebook_bytes: int = Field(default=32 * 1_048_576, description="Largest notebook file imported")
    reconcile_interval_seconds: float = Field(default=1.0, description="Pause between watcher passes")
    reconcile_batch_size: int = Field(
        default=500, description="Rows a watcher reads and writes at a time (each pass covers every live row)"
    )
    redispatch_after_seconds: float = Field(
        default=15.0, description="A launch not picked up by a worker after this long is enqueued again"
    )
    zombie_after_seconds: float = Field(
        default=120.0, description="A run its backend has no record of for this long is declared lost"
    )
    cancel_grace_seconds: float = Field(default=10.0, description="SIGTERM-to-SIGKILL grace when killing a run")
    pool_size: int = Field(
        default=1, ge=0, description="Warm agents the local backend keeps started for new sessions; 0 turns it off"
    )
    session_start_timeout_seconds: float = Field(
        default=300.0, description="A session whose driver is not ready after this long ends in error"
    )
    session_idle_timeout_seconds: float = Field(
        default=3600.0, description="A session with no statement for this long is stopped (per-session idleTimeout)"
    )
    session_ttl_seconds: float | None = Field(
        default=None, description="A session older than this is stopped (per-session ttl); unset: no limit"
    )
    statement_submit_wait_seconds: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description="A new statement's POST waits this long for it to finish, so quick ones answer with output",
    )
    statement_read_wait_seconds: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description="A read of an unfinished statement waits this long for it to end (a long poll): clients "
        "that poll in a loop see the end at once, and steal no CPU from Spark meanwhile",
    )
    agent_orphan_after_seconds: float = Field(
        default=600.0, description="An agent that hears nothing from the control plane this long stops itself"
    )
    cleanup_interval_seconds: float = Field(default=60.0, description="How often `sparkplane up` runs cleanup")
    retention_days: float = Field(default=30.0, description="Finished rows and their logs are kept this long")

    @field_validator("spark_network_aws_subnet_ids", "spark_network_aws_security_groups", mode="before")
    @classmethod
    def _json_or_csv_list(cls, value: Any) -> Any:
        # The seed's examples give JSON lists ('["subnet-1","subnet-2"]'); a comma list is accepted too.
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # --- derived ---------------------------------------------------------------------------------------------
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        if self.pgsql_host:
            password = self.pgsql_password.get_secret_value() if self.pgsql_password else ""
            auth = quote(self.pgsql_user or "postgres", safe="") + (f":{quote(password, safe='')}" if password else "")
            options = self.pgsql_connection_options
            if options and not options.startswith("?"):
                options = "?" + options
            database = self.pgsql_database or "sparkplane"
            return f"postgresql+psycopg://{auth}@{self.pgsql_host}:{self.pgsql_port}/{database}{options}"
        return f"sqlite:///{self.data_dir / 'sparkplane.sqlite'}"

    def celery_broker_url(self) -> str:
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        if self.rabbitmq_host:
            password = self.rabbitmq_password.get_secret_value() if self.rabbitmq_password else ""
            auth = quote(self.rabbitmq_user or "guest", safe="") + (f":{quote(password, safe='')}" if password else "")
            vhost = quote(self.rabbitmq_vhost, safe="")
            return f"{self.rabbitmq_scheme}://{auth}@{self.rabbitmq_host}:{self.rabbitmq_port}/{vhost}"
        # Embedded: Celery over kombu's SQLAlchemy transport on a SQLite file; no broker process.
        return f"sqla+sqlite:///{self.data_dir / 'broker.sqlite'}"

    def blob_root(self) -> str:
        return self.spark_blob_storage or (self.data_dir / "blob").as_uri()

    def run_root(self) -> Path:
        return self.data_dir / "runs"

    def cluster_run_root(self) -> Path:
        return self.data_dir / "clusters"

    def session_run_root(self) -> Path:
        # Apart from batches': each local backend reports every live folder under its root as its own.
        return self.data_dir / "sessions"

    def generated_key_file(self) -> Path:
        """Where embedded mode keeps the encryption key it generated (used only while encryption_key is unset)."""
        return self.data_dir / "encryption.key"

    def is_embedded_database(self) -> bool:
        return self.sqlalchemy_url().startswith("sqlite")


def load_settings(**overrides: Any) -> Settings:
    secrets_dir = os.environ.get("SPARKPLANE_SECRETS_DIR")
    settings = Settings(_secrets_dir=secrets_dir, **overrides) if secrets_dir else Settings(**overrides)
    _enforce_production_safety(settings)
    return settings


def _enforce_production_safety(settings: Settings) -> None:
    if settings.environment != "production":
        return
    problems = []
    if settings.is_embedded_database():
        problems.append("a PostgreSQL database (PGSQL_HOST or SPARKPLANE_DATABASE_URL)")
    if settings.celery_broker_url().startswith("sqla+"):
        problems.append("a RabbitMQ broker (RABBITMQ_HOST or SPARKPLANE_BROKER_URL)")
    if settings.encryption_key is None:
        # A generated key lives on one machine's disk: other replicas could not read what this one stored.
        problems.append(
            "an encryption key for users' credentials (SPARKPLANE_ENCRYPTION_KEY, or a file of that name in "
            "SPARKPLANE_SECRETS_DIR)"
        )
    if problems:
        raise ValueError("SPARKPLANE_ENVIRONMENT=production needs " + " and ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings with every secret masked, and URLs' passwords hidden, for `sparkplane config`."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            out[name] = "**********" if value.get_secret_value() else ""
        elif isinstance(value, Path):
            out[name] = str(value)
        else:
            out[name] = value
    out["effective_database_url"] = _hide_password(settings.sqlalchemy_url())
    out["effective_broker_url"] = _hide_password(settings.celery_broker_url())
    return out


def env_table() -> str:
    """Every setting as a markdown table row: variable, default, meaning (for the README)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        variable = alias.choices[0] if isinstance(alias, AliasChoices) else f"SPARKPLANE_{name.upper()}"
        if field.default_factory is not None:
            default = "~/.local/share/sparkplane" if name == "data_dir" else "[]"
        else:
            default = "" if field.default is None else str(field.default)
        secret = " (secret; may be a file in SPARKPLANE_SECRETS_DIR)" if field.annotation == SecretStr | None else ""
        rows.append(f"| `{variable}` | {f'`{default}`' if default else ''} | {(field.description or '')}{secret} |")
    return "\n".join(rows)


def _hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in auth else url
