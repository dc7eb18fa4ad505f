"""What the EC2 provider needs to know, given explicitly (the services layer builds it from the settings)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


@dataclass(frozen=True, slots=True)
class Ec2Config:
    role_arn: str  # SPARK_CUSTOMER_IAM_ROLE: the cross-account role in the customer's account
    external_id: str = field(repr=False)  # the role's trust policy requires it of sts:AssumeRole
    region: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    ami_id: str
    key_name: str | None = None
    instance_profile: str | None = None  # a name or an ARN; None: the nodes get no AWS credentials
    endpoint_url: str | None = None  # a stand-in for STS and EC2 (moto's server in the tests)
    spark_home: str = "/opt/spark"  # where Spark is installed on the AMI
    sparkplane_version: str = "unknown"  # written into user data and a tag, to tell which control plane made a node
    max_nodes: int | None = None
    # Every node reports this often. 15 s: a lost node is noticed within a few reports, and a cluster of
    # 100 nodes sends the control plane 7 small requests a second.
    report_interval_seconds: int = 15
    session_name: str = "sparkplane"  # RoleSessionName, shown in the customer's CloudTrail
    assume_role_seconds: int = 3600  # the default (and the most a role chained from another role may have)

    def __post_init__(self) -> None:
        problems = []
        if not _ROLE_ARN.match(self.role_arn):
            problems.append(
                "SPARK_CUSTOMER_IAM_ROLE must be a role ARN (arn:aws:iam::<account>:role/<name>), "
                f"not {self.role_arn!r}"
            )
        if not self.external_id:
            problems.append("SPARKPLANE_EC2_EXTERNAL_ID must be set: the customer's role requires it")
        if not self.region:
            problems.append("AWS_DEFAULT_REGION must name the region the customer's subnets are in")
        if not self.subnet_ids:
            problems.append("SPARK_NETWORK_AWS_SUBNET_IDS must list at least one subnet")
        if not self.security_group_ids:
            problems.append("SPARK_NETWORK_AWS_SECURITY_GROUPS must list at least one security group")
        if not self.ami_id.startswith("ami-"):
            problems.append(f"SPARKPLANE_EC2_AMI_ID must be an AMI id (ami-...), not {self.ami_id!r}")
        if not 5 <= self.report_interval_seconds <= 300:
            problems.append("the report interval must be 5 to 300 seconds")
        if problems:
            raise ValueError("; ".join(problems))
