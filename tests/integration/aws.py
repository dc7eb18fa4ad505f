"""moto's server on 127.0.0.1 as a stand-in for AWS, and a customer account inside it, for the ec2 provider.

Two accounts, as in production: the control plane signs with its own fake keys (moto files requests signed
with an unknown key under its default account, 123456789012), and the customer's role, VPC, subnets,
security group, key pair and instance profile live in CUSTOMER_ACCOUNT. moto puts the instances a request
launches in the account its access key belongs to, so an instance launched with the assumed role's
credentials is in the customer's account, and one launched with the control plane's would not be.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest

from sparkplane.backends.ec2 import Ec2Config

REGION = "us-east-1"
CONTROL_PLANE_ACCOUNT = "123456789012"  # moto's default account
CUSTOMER_ACCOUNT = "111122223333"
CONTROL_PLANE_KEY = "AKIACONTROLPLANE0001"
CONTROL_PLANE_SECRET = "control-plane-secret-key"
EXTERNAL_ID = "sparkplane-external-id-7f3a"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "ec2-provider.md"
LOOPBACK = {"127.0.0.1", "localhost"}


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]
    recording: Path

    def post(self, path: str, body: bytes = b"") -> bytes:
        # moto reads the body raw; a form content type would make werkzeug consume it first.
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    @contextmanager
    def enforcing_auth(self) -> Iterator[None]:
        """moto checks signatures, IAM policies and roles' trust policies inside the block (off by default)."""
        self.post("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self.post("/moto-api/reset-auth", b"inf")

    def start_recording(self) -> None:
        self.post("/moto-api/recorder/reset-recording")
        self.post("/moto-api/recorder/start-recording")

    def recorded(self) -> list[Recorded]:
        """Every request moto received since start_recording, in order, with who signed it."""
        self.post("/moto-api/recorder/stop-recording")
        with urllib.request.urlopen(self.url + "/moto-api/recorder/download-recording", timeout=10) as response:
            lines = response.read().decode().splitlines()
        return [Recorded.of(json.loads(line)) for line in lines if line.strip()]


@dataclass(frozen=True)
class Recorded:
    service: str  # from the signature's credential scope: sts, ec2, iam
    action: str
    access_key: str
    has_session_token: bool
    params: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Recorded:
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        body = entry.get("body") or ""
        text = base64.b64decode(body).decode() if entry.get("body_encoded") else body
        params = parse_qs(text)
        match = re.search(r"Credential=([^/]+)/\d{8}/[^/]+/([^/]+)/aws4_request", headers.get("authorization", ""))
        return cls(
            service=match.group(2) if match else "",
            action=(params.get("Action") or [""])[0],
            access_key=match.group(1) if match else "",
            has_session_token="x-amz-security-token" in headers,
            params=params,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(tmp: Path) -> Iterator[MotoServer]:
    """`python -m moto.server` on a free 127.0.0.1 port, until the block ends; no process is left behind."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    env.update(
        MOTO_RECORDER_FILEPATH=str(tmp / "moto-recording.jsonl"),
        # moto accepts any AMI, instance type and key pair unless asked to check them; AWS checks them.
        MOTO_ENABLE_AMI_VALIDATION="true",
        MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION="true",
        MOTO_ENABLE_KEYPAIR_VALIDATION="true",
        NO_PROXY="*",
    )
    log = (tmp / "moto-server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto's server exited at start: {(tmp / 'moto-server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not listen within 60 s") from None
                time.sleep(0.05)
        yield MotoServer(f"http://127.0.0.1:{port}", process, tmp / "moto-recording.jsonl")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse any connection or name lookup this process attempts to anything but 127.0.0.1 (boto3 must never
    reach AWS itself, nor the instance metadata service, when a test forgets an endpoint). botocore wraps
    the refusal in an error of its own, which a provider may translate, so every attempt is also listed and
    fails the block at its end."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
    attempts: list[str] = []

    def refuse(what: Any) -> None:
        attempts.append(repr(what))
        raise AssertionError(f"a test tried to reach {what!r}; only 127.0.0.1 may be reached")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            refuse(address)
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        yield attempts
    if attempts:
        raise AssertionError(f"tried to reach {', '.join(attempts)}: only 127.0.0.1 may be reached")


@contextmanager
def control_plane_credentials(
    tmp: Path, key: str = CONTROL_PLANE_KEY, secret: str = CONTROL_PLANE_SECRET
) -> Iterator[None]:
    """The control plane's own identity: static keys in the environment, and nothing else to find."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            mp.delenv(name)
        mp.setenv("AWS_ACCESS_KEY_ID", key)
        mp.setenv("AWS_SECRET_ACCESS_KEY", secret)
        mp.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


def admin(server: MotoServer, service: str, account: str = CUSTOMER_ACCOUNT) -> Any:
    """A client of the test itself (never the provider's), acting in `account` through moto's header."""
    client = boto3.client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="AKIATESTADMIN0000001",
        aws_secret_access_key="test-admin-secret",
    )

    def in_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    client.meta.events.register("before-sign.*.*", in_account)
    return client


def doc_policies() -> dict[str, dict[str, Any]]:
    """The trust and permissions policies as docs/ec2-provider.md gives them (so the doc is what is tested)."""
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", DOCS.read_text(), re.S)]
    policies = [b for b in blocks if "Statement" in b]
    trust = next(p for p in policies if p["Statement"][0]["Action"] == "sts:AssumeRole")
    permissions = next(p for p in policies if p is not trust)
    return {"trust": trust, "permissions": permissions}


def fill(document: dict[str, Any], **values: str) -> str:
    text = json.dumps(document)
    for name, value in values.items():
        text = text.replace(f"<{name}>", value)
    assert "<" not in text, f"a placeholder is left in {text}"
    return text


@dataclass(frozen=True)
class Customer:
    role_arn: str
    subnets: tuple[str, ...]
    security_group: str
    ami: str
    key_name: str
    instance_profile: str


def make_customer(server: MotoServer, *, principal: str, account: str = CUSTOMER_ACCOUNT) -> Customer:
    """The customer's side, set up as docs/ec2-provider.md says: the role with the doc's trust policy, the
    network, the node profile. `principal` is who the trust policy lets in."""
    iam, ec2 = admin(server, "iam", account), admin(server, "ec2", account)
    role_name = "sparkplane-cross-account"
    trust = fill(doc_policies()["trust"], CONTROL_PLANE_ROLE_ARN=principal, EXTERNAL_ID=EXTERNAL_ID)
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.create_role(
        RoleName="sparkplane-node", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    iam.create_instance_profile(InstanceProfileName="sparkplane-node")
    iam.add_role_to_instance_profile(InstanceProfileName="sparkplane-node", RoleName="sparkplane-node")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("abc")
    )
    group = ec2.create_security_group(GroupName="sparkplane-nodes", Description="sparkplane nodes", VpcId=vpc)[
        "GroupId"
    ]
    ec2.create_key_pair(KeyName="sparkplane-ops")
    # One of moto's default AMIs (filtered: describing all of them takes seconds).
    linux = [{"Name": "name", "Values": ["amzn2-ami-hvm-*"]}]
    ami = ec2.describe_images(Owners=["amazon"], Filters=linux)["Images"][0]["ImageId"]
    return Customer(role_arn, subnets, group, ami, "sparkplane-ops", "sparkplane-node")


def provider_config(server: MotoServer, customer: Customer, **overrides: Any) -> Ec2Config:
    """The provider's configuration for this customer, as the services would build it from the settings."""
    base = Ec2Config(
        role_arn=customer.role_arn,
        external_id=EXTERNAL_ID,
        region=REGION,
        subnet_ids=customer.subnets,
        security_group_ids=(customer.security_group,),
        ami_id=customer.ami,
        key_name=customer.key_name,
        instance_profile=customer.instance_profile,
        endpoint_url=server.url,
        sparkplane_version="0.1.0",
    )
    return replace(base, **overrides)
