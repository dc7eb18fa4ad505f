"""Credentials in the customer's account: STS AssumeRole with the external id, refreshed before they expire.

The control plane's own credentials (whatever boto3's default chain finds: an instance profile, IRSA, the
environment) sign one kind of request only: sts:AssumeRole. Every EC2 client comes from `customer_session()`,
whose only credential source is the assumed role: a botocore session with a resolver that holds our
refreshable credentials and nothing else, so it can never fall back to the control plane's own.

botocore's RefreshableCredentials refreshes 15 minutes before expiry when it can (advisory) and blocks for a
refresh 10 minutes before (mandatory), under its own lock, so the worker threads that share one provider
share one set of credentials and one refresh.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from mypy_boto3_sts import STSClient

    from sparkplane.backends.ec2.config import Ec2Config

_METHOD = "sparkplane-assume-role"


def session_name(prefix: str) -> str:
    """`<prefix>-<host>`: CloudTrail in the customer's account then says which control plane process acted."""
    host = re.sub(r"[^\w+=,.@-]", "-", socket.gethostname()) or "host"
    return f"{prefix}-{host}"[:64]


class AssumedRole:
    """A boto3 session in the customer's account, and the STS client (control plane credentials) behind it."""

    def __init__(self, config: Ec2Config, *, client_config: Config | None = None) -> None:
        self._config = config
        self._client_config = client_config
        self._session_name = session_name(config.session_name)
        self._sts_client: STSClient | None = None
        self.assumed = 0  # how many times the role was assumed, for tests and logs

    def _sts(self) -> STSClient:
        import boto3

        if self._sts_client is None:
            # The control plane's own session: the default credential chain, used for this client only.
            own = boto3.Session(region_name=self._config.region)
            self._sts_client = own.client("sts", endpoint_url=self._config.endpoint_url, config=self._client_config)
        return self._sts_client

    def _assume(self) -> dict[str, str]:
        response = self._sts().assume_role(
            RoleArn=self._config.role_arn,
            RoleSessionName=self._session_name,
            ExternalId=self._config.external_id,
            DurationSeconds=self._config.assume_role_seconds,
        )
        self.assumed += 1
        creds = response["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    def customer_session(self) -> boto3.Session:
        import boto3
        import botocore.session
        from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials

        credentials = DeferredRefreshableCredentials(refresh_using=self._assume, method=_METHOD)

        class _Provider(CredentialProvider):
            METHOD = _METHOD
            CANONICAL_NAME = _METHOD

            def load(self) -> DeferredRefreshableCredentials:
                return credentials

        core = botocore.session.Session()
        core.register_component("credential_provider", CredentialResolver([_Provider()]))
        return boto3.Session(botocore_session=core, region_name=self._config.region)
