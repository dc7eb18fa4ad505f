"""AWS errors, translated at the provider's boundary into the backend taxonomy (backends/base.py).

BackendError
├── TransientBackendError   throttling, capacity, 5xx, an endpoint not reached: retry later, change nothing
└── PermanentBackendError   auth, permissions, invalid AMI/subnet/group/parameters, quotas: a person must act

Permanent messages name the setting or the policy to change. Messages never hold a secret: AWS's own error
messages name ARNs and ids, which are not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sparkplane.backends.base import BackendError, PermanentBackendError, TransientBackendError

DOCS = "docs/ec2-provider.md"

# Seconds to wait before retrying. AWS asks callers to back off on throttling; capacity in an availability
# zone comes back in minutes, not seconds.
_TRANSIENT: dict[str, float] = {
    "Throttling": 10.0,
    "ThrottlingException": 10.0,
    "RequestLimitExceeded": 10.0,
    "RequestThrottled": 10.0,
    "TooManyRequestsException": 10.0,
    "PriorRequestNotComplete": 10.0,
    "InsufficientInstanceCapacity": 60.0,
    "InsufficientCapacity": 60.0,
    "InternalError": 5.0,
    "InternalFailure": 5.0,
    "ServiceUnavailable": 5.0,
    "Unavailable": 5.0,
    "RequestTimeout": 5.0,
    "RequestTimeoutException": 5.0,
    "IDPCommunicationError": 5.0,
}

_SETTINGS_HINTS: dict[str, str] = {
    "InvalidAMIID": "the AMI is not available in this region to the customer's account: set SPARKPLANE_EC2_AMI_ID",
    "InvalidSubnetID": "a subnet of SPARK_NETWORK_AWS_SUBNET_IDS does not exist in this region",
    "InvalidSubnet": "a subnet of SPARK_NETWORK_AWS_SUBNET_IDS does not exist in this region",
    "InvalidGroup": "a security group of SPARK_NETWORK_AWS_SECURITY_GROUPS does not exist in the subnets' VPC",
    "InvalidSecurityGroupID": "a security group of SPARK_NETWORK_AWS_SECURITY_GROUPS does not exist",
    "InvalidKeyPair": "the key pair SPARKPLANE_EC2_KEY_NAME does not exist in this region",
    "NoSuchEntity": "the instance profile SPARKPLANE_EC2_INSTANCE_PROFILE does not exist",
    "VcpuLimitExceeded": "the customer's EC2 vCPU quota is reached: raise it, or make the cluster smaller",
    "InstanceLimitExceeded": "the customer's EC2 instance quota is reached: raise it, or make the cluster smaller",
    "OptInRequired": "the customer's account has not opted in to this region or AMI",
    "Unsupported": "the instance type is not offered in a subnet's availability zone: choose other subnets",
}

_AUTH = {"AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "RequestExpired"}


def _assume_hint() -> str:
    return (
        "sparkplane could not assume SPARK_CUSTOMER_IAM_ROLE: the role's trust policy must allow the control "
        f"plane's principal and require sts:ExternalId equal to SPARKPLANE_EC2_EXTERNAL_ID (see {DOCS})"
    )


def translate(exc: Exception, *, doing: str) -> BackendError:
    """The backend error for a boto3/botocore exception raised while `doing` (e.g. 'launching node x')."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).split("Encoded authorization failure message")[0].strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        said = f"(AWS said {code}: {message})" if message else f"(AWS said {code})"
        if code in _TRANSIENT or status >= 500:
            return TransientBackendError(
                f"{doing}: AWS is busy or unavailable {said}", retry_after=_TRANSIENT.get(code, 5.0)
            )
        if exc.operation_name == "AssumeRole":
            return PermanentBackendError(f"{doing}: {_assume_hint()} {said}")
        if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
            hint = f"the customer's role may not call {exc.operation_name}: grant the permissions policy in {DOCS}"
            return PermanentBackendError(f"{doing}: {hint} {said}")
        if code in _AUTH:
            hint = "the assumed role's credentials were refused: check the control plane's clock and the role"
            return PermanentBackendError(f"{doing}: {hint} {said}")
        family = code.split(".")[0]
        hint = _SETTINGS_HINTS.get(family, "EC2 refused the request")
        return PermanentBackendError(f"{doing}: {hint} {said}")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return PermanentBackendError(
            f"{doing}: the control plane has no AWS credentials of its own to call sts:AssumeRole with "
            "(give it an instance profile or IRSA role, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(exc, bx.NoRegionError):
        return PermanentBackendError(f"{doing}: set AWS_DEFAULT_REGION to the region of the customer's subnets")
    if isinstance(exc, bx.ParamValidationError):
        return PermanentBackendError(f"{doing}: sparkplane built a request EC2 cannot take ({exc})")
    if isinstance(exc, bx.ConnectionError | bx.HTTPClientError):
        return TransientBackendError(f"{doing}: AWS could not be reached ({exc})", retry_after=5.0)
    return TransientBackendError(f"{doing}: {type(exc).__name__}: {exc}", retry_after=5.0)


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Run a block of boto3 calls; AWS's exceptions leave it as backend errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, doing=doing) from exc
