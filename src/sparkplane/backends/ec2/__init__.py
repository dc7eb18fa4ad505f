"""The `ec2` cluster provider: Spark standalone clusters on instances in the customer's own AWS account.

boto3 is imported inside the functions that call AWS, so importing this package (and the rest of sparkplane)
does not need it. See README.md here, and docs/ec2-provider.md for what the customer sets up.
"""

from __future__ import annotations

from sparkplane.backends.ec2.config import Ec2Config
from sparkplane.backends.ec2.provider import Ec2ClusterProvider

__all__ = ["Ec2ClusterProvider", "Ec2Config"]
