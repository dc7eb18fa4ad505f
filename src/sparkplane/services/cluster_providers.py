"""The cluster providers, built from the settings (providers themselves take explicit configuration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparkplane import __version__
from sparkplane.domain.errors import InvalidInput
from sparkplane.settings import Settings

if TYPE_CHECKING:
    from sparkplane.backends.ec2 import Ec2ClusterProvider, Ec2Config


def ec2_config(settings: Settings) -> Ec2Config:
    """The ec2 provider's configuration; InvalidInput naming every setting that is missing or wrong."""
    from sparkplane.backends.ec2 import Ec2Config

    required = {
        "SPARK_CUSTOMER_IAM_ROLE": settings.spark_customer_iam_role,
        "SPARKPLANE_EC2_EXTERNAL_ID": settings.ec2_external_id,
        "AWS_DEFAULT_REGION": settings.aws_default_region,
        "SPARK_NETWORK_AWS_SUBNET_IDS": settings.spark_network_aws_subnet_ids,
        "SPARK_NETWORK_AWS_SECURITY_GROUPS": settings.spark_network_aws_security_groups,
        "SPARKPLANE_EC2_AMI_ID": settings.ec2_ami_id,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise InvalidInput(f"the ec2 cluster provider needs {', '.join(missing)} (see docs/ec2-provider.md)")
    assert settings.ec2_external_id is not None
    try:
        return Ec2Config(
            role_arn=settings.spark_customer_iam_role or "",
            external_id=settings.ec2_external_id.get_secret_value(),
            region=settings.aws_default_region or "",
            subnet_ids=tuple(settings.spark_network_aws_subnet_ids),
            security_group_ids=tuple(settings.spark_network_aws_security_groups),
            ami_id=settings.ec2_ami_id or "",
            key_name=settings.ec2_key_name,
            instance_profile=settings.ec2_instance_profile,
            endpoint_url=settings.aws_endpoint_url,
            spark_home=settings.ec2_spark_home,
            sparkplane_version=__version__,
            max_nodes=settings.ec2_max_nodes,
        )
    except ValueError as exc:
        raise InvalidInput(f"the ec2 cluster provider is misconfigured: {exc}") from exc


def ec2_provider(settings: Settings) -> Ec2ClusterProvider:
    from sparkplane.backends.ec2 import Ec2ClusterProvider

    return Ec2ClusterProvider(ec2_config(settings))
