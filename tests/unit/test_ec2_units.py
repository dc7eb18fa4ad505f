"""The ec2 provider's pure parts: the state table, error translation, user data, client tokens, settings.

No network: botocore's Stubber answers the one test that drives a client, and bash only parses or evaluates
the rendered script's own value block.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from sparkplane.backends.base import PermanentBackendError, TransientBackendError
from sparkplane.backends.clusters import ClusterLaunch, Node, NodeRole, NodeState
from sparkplane.backends.ec2 import Ec2ClusterProvider, Ec2Config
from sparkplane.backends.ec2 import instances as ins
from sparkplane.backends.ec2.errors import translate
from sparkplane.backends.ec2.userdata import BootstrapValues, render
from sparkplane.domain.clusters import NODE_TYPES
from sparkplane.domain.errors import InvalidInput
from sparkplane.services.cluster_providers import ec2_config
from sparkplane.settings import Settings, masked

# Every state of EC2's InstanceState.Name (the API reference lists exactly these six).
DOCUMENTED = {
    "pending": NodeState.PENDING,
    "running": NodeState.RUNNING,
    "shutting-down": NodeState.STOPPING,
    "terminated": NodeState.GONE,
    "stopping": NodeState.STOPPING,
    "stopped": NodeState.GONE,
}


def config(**overrides: Any) -> Ec2Config:
    values: dict[str, Any] = {
        "role_arn": "arn:aws:iam::111122223333:role/sparkplane-cross-account",
        "external_id": "the-external-id",
        "region": "eu-west-1",
        "subnet_ids": ("subnet-a", "subnet-b", "subnet-c"),
        "security_group_ids": ("sg-1",),
        "ami_id": "ami-0123456789abcdef0",
        "endpoint_url": "http://127.0.0.1:9",  # never called here
        **overrides,
    }
    return Ec2Config(**values)


def launch(**overrides: Any) -> ClusterLaunch:
    values: dict[str, Any] = {
        "uid": "c0ffee",
        "name": "etl",
        "node_type": NODE_TYPES["sp.large"],
        "spark_env_vars": {"TZ": "UTC"},
        "report_url": "https://sp.example.test/reports",
        "report_token": "report-token-1",
        **overrides,
    }
    return ClusterLaunch(**values)


# --- the state table ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("native", "expected"), sorted(DOCUMENTED.items()))
def test_every_documented_instance_state_maps(native: str, expected: NodeState) -> None:
    assert ins.map_state(native) is expected


def test_the_table_holds_exactly_the_documented_states() -> None:
    assert dict(ins._STATE_MAP) == DOCUMENTED


@pytest.mark.parametrize("native", ["hibernating", "", "RUNNING"])
def test_an_unknown_state_is_pending_and_logged_never_raised(native: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert ins.map_state(native) is NodeState.PENDING
    assert "unknown EC2 instance state" in caplog.text


def test_one_node_per_key_prefers_the_live_instance() -> None:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    old = Node(
        "c-g0-master", NodeRole.MASTER, NodeState.GONE, "terminated", "i-old", started_at=at + dt.timedelta(hours=2)
    )
    new = Node("c-g0-master", NodeRole.MASTER, NodeState.RUNNING, "running", "i-new", started_at=at)
    w10 = Node("c-g0-w10", NodeRole.WORKER, NodeState.RUNNING, "running", "i-10")
    w2 = Node("c-g0-w2", NodeRole.WORKER, NodeState.PENDING, "pending", "i-2")
    assert [n.node_id for n in ins.one_per_key([w10, old, w2, new])] == ["i-new", "i-2", "i-10"]


def test_an_instance_without_a_node_tag_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    instance: Any = {
        "InstanceId": "i-1",
        "State": {"Name": "running"},
        "Tags": [{"Key": "sparkplane:cluster", "Value": "c"}],
    }
    with caplog.at_level(logging.WARNING):
        assert ins.node_of(instance) is None
    assert "no sparkplane:node tag" in caplog.text


# --- error translation ----------------------------------------------------------------------------------------


def client_error(code: str, status: int = 400, operation: str = "RunInstances", message: str = "no") -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "status", "retry_after"),
    [
        ("RequestLimitExceeded", 503, 10.0),
        ("Throttling", 400, 10.0),
        ("InsufficientInstanceCapacity", 500, 60.0),
        ("InternalError", 500, 5.0),
        ("Unavailable", 503, 5.0),
        ("SomethingNew", 502, 5.0),
    ],
)
def test_throttling_capacity_and_5xx_are_transient(code: str, status: int, retry_after: float) -> None:
    error = translate(client_error(code, status), doing="launching node c-g0-w1")
    assert isinstance(error, TransientBackendError) and error.retry_after == retry_after
    assert str(error).startswith("launching node c-g0-w1: ") and code in str(error)


@pytest.mark.parametrize(
    ("code", "operation", "says"),
    [
        ("AccessDenied", "AssumeRole", "SPARKPLANE_EC2_EXTERNAL_ID"),
        ("UnauthorizedOperation", "RunInstances", "may not call RunInstances"),
        ("AccessDenied", "TerminateInstances", "docs/ec2-provider.md"),
        ("InvalidAMIID.NotFound", "RunInstances", "SPARKPLANE_EC2_AMI_ID"),
        ("InvalidAMIID.Malformed", "RunInstances", "SPARKPLANE_EC2_AMI_ID"),
        ("InvalidSubnetID.NotFound", "RunInstances", "SPARK_NETWORK_AWS_SUBNET_IDS"),
        ("InvalidGroup.NotFound", "RunInstances", "SPARK_NETWORK_AWS_SECURITY_GROUPS"),
        ("InvalidKeyPair.NotFound", "RunInstances", "SPARKPLANE_EC2_KEY_NAME"),
        ("InvalidParameterValue", "RunInstances", "EC2 refused the request"),
        ("VcpuLimitExceeded", "RunInstances", "quota"),
        ("AuthFailure", "DescribeInstances", "clock"),
    ],
)
def test_auth_and_validation_errors_are_permanent_and_actionable(code: str, operation: str, says: str) -> None:
    error = translate(client_error(code, operation=operation, message="details"), doing="launching node c-g0-w1")
    assert isinstance(error, PermanentBackendError) and not isinstance(error, TransientBackendError)
    assert says in str(error) and f"AWS said {code}: details" in str(error)


def test_botocore_errors_translate_by_kind() -> None:
    from botocore import exceptions as bx

    unreachable = translate(bx.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), doing="x")
    assert isinstance(unreachable, TransientBackendError) and unreachable.retry_after
    timeout = translate(bx.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), doing="x")
    assert isinstance(timeout, TransientBackendError)
    no_creds = translate(bx.NoCredentialsError(), doing="x")
    assert isinstance(no_creds, PermanentBackendError) and "sts:AssumeRole" in str(no_creds)
    assert isinstance(translate(bx.ParamValidationError(report="bad"), doing="x"), PermanentBackendError)


# --- user data ------------------------------------------------------------------------------------------------

NASTY = 'it\'s "$HOME" `id` $(reboot) \\ ; & | \n second line'


def values(role: NodeRole = NodeRole.WORKER, **overrides: Any) -> BootstrapValues:
    base: dict[str, Any] = {
        "key": "c0ffee-g0-w3" if role is NodeRole.WORKER else "c0ffee-g0-master",
        "role": role,
        "spark_home": "/opt/spark 4.1",
        "report_url": "https://sp.example.test/api/v1/clusters/c0ffee/reports?a=1&b=2",
        "report_token": "tok'en$1",
        "report_interval_seconds": 15,
        "worker_cores": 4,
        "worker_memory_mb": 8192,
        "master_url": "spark://10.0.0.5:7077" if role is NodeRole.WORKER else "",
        "spark_env": (("GREETING", NASTY), ("TZ", "UTC")),
        **overrides,
    }
    return BootstrapValues(**base)


def rendered_values(script: str) -> str:
    start = script.index("# --- rendered by sparkplane")
    return script[start : script.index("# --- end of rendered values ---")]


@pytest.mark.parametrize("role", list(NodeRole))
def test_the_rendered_script_is_valid_bash(role: NodeRole) -> None:
    script = render(values(role))
    assert script.startswith("#!/bin/bash\n") and "@SPARKPLANE_VALUES@" not in script
    result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    main_class = "deploy.master.Master" if role is NodeRole.MASTER else "deploy.worker.Worker"
    assert f"org.apache.spark.{main_class}" in script


def test_every_value_reaches_bash_exactly_as_given() -> None:
    """The value block, evaluated by bash, gives back each value byte for byte, and so does the spark-env.sh
    that the script writes from it (sourced the way Spark sources it)."""
    block = rendered_values(render(values()))
    probe = block + (
        'printf "%s\\0" "$SP_KEY" "$SP_SPARK_HOME" "$SP_REPORT_URL" "$SP_REPORT_TOKEN" "$SP_MASTER_URL"\n'
        'env -i bash -c \'for line in "$@"; do eval "$line"; done; printf "%s\\0" "$GREETING" "$TZ"\' _ '
        '"${SP_SPARK_ENV[@]}"\n'
    )
    result = subprocess.run(["bash", "-c", probe], capture_output=True, check=True)
    assert result.stdout.decode().split("\0")[:-1] == [
        "c0ffee-g0-w3",
        "/opt/spark 4.1",
        "https://sp.example.test/api/v1/clusters/c0ffee/reports?a=1&b=2",
        "tok'en$1",
        "spark://10.0.0.5:7077",
        NASTY,
        "UTC",
    ]


def test_the_only_secret_in_user_data_is_the_report_token() -> None:
    provider = Ec2ClusterProvider(config(external_id="ext-id-secret-42"))
    request = provider._run_request(launch(), NodeRole.MASTER, key="c0ffee-g0-master", master_url=None)
    user_data = request["UserData"]
    assert "report-token-1" in user_data and "ext-id-secret-42" not in user_data
    assert "DescribeInstanceAttribute" in user_data, "the script says who can read it"
    uses = [line.strip() for line in user_data.splitlines() if "SP_REPORT_TOKEN" in line]
    assert uses == [  # set, then written to a root-only file that curl reads: never on a command line
        "SP_REPORT_TOKEN=report-token-1",
        """(umask 077 && printf 'Authorization: Bearer %s\\n' "$SP_REPORT_TOKEN" > /run/sparkplane/report-headers)""",
    ]
    assert "-H @/run/sparkplane/report-headers" in user_data


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"key": "c0ffee-g0-w3; reboot"}, "letters, digits and dashes"),
        ({"master_url": ""}, "master's spark:// URL"),
        ({"spark_env": (("BAD NAME", "x"),)}, "not an environment variable name"),
        ({"spark_env": (("A", "x\x00y"),)}, "NUL"),
        ({"spark_env": (("BIG", "x" * 17_000),)}, "over EC2's 16384"),
    ],
)
def test_values_that_cannot_be_placed_safely_are_refused(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        render(values(**overrides))


# --- launch requests and client tokens -------------------------------------------------------------------------


def test_a_launch_request_is_the_same_every_time_and_tags_instance_and_volume() -> None:
    provider = Ec2ClusterProvider(config(key_name="ops", instance_profile="arn:aws:iam::1:instance-profile/n"))
    c = launch(tags={"team": "data", "Name": "theirs"})
    request = provider._run_request(c, NodeRole.WORKER, key="c0ffee-g0-w2", master_url="spark://10.0.0.5:7077")
    assert request == provider._run_request(c, NodeRole.WORKER, key="c0ffee-g0-w2", master_url="spark://10.0.0.5:7077")
    assert request["InstanceType"] == "m5.xlarge" and request["MinCount"] == request["MaxCount"] == 1
    assert request["KeyName"] == "ops" and request["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:instance-profile/n"}
    assert [s["ResourceType"] for s in request["TagSpecifications"]] == ["instance", "volume"]
    tags = {t["Key"]: t["Value"] for t in request["TagSpecifications"][0]["Tags"]}
    assert tags == {
        "Name": "theirs",  # a custom Name wins; sparkplane's own tags cannot be overridden
        "team": "data",
        "sparkplane:cluster": "c0ffee",
        "sparkplane:node": "c0ffee-g0-w2",
        "sparkplane:role": "worker",
        "sparkplane:version": "unknown",
    }


def test_subnets_are_spread_by_key_the_same_way_every_time() -> None:
    subnets = ("subnet-a", "subnet-b", "subnet-c")
    keys = [f"c0ffee-g0-w{n}" for n in range(300)]
    assert [ins.subnet_for(k, subnets) for k in keys] == [ins.subnet_for(k, subnets) for k in keys]
    spread = Counter(ins.subnet_for(k, subnets) for k in keys)
    assert set(spread) == set(subnets) and min(spread.values()) > 60


def test_the_client_token_starts_with_the_key_and_changes_only_with_the_launch() -> None:
    request: Any = {"ImageId": "ami-1", "UserData": "x"}
    token = ins.client_token("c0ffee-g0-master", request)
    assert token.startswith("c0ffee-g0-master.") and len(token) <= 64
    assert ins.client_token("c0ffee-g0-master", dict(request)) == token
    assert ins.client_token("c0ffee-g0-master", {**request, "UserData": "y"}) != token
    assert ins.client_token("c0ffee-g0-master", request, after="i-old") != token
    assert len(ins.client_token("k" * 120 + "-master", request)) == 64


def test_a_token_answered_with_an_ended_instance_chains_to_a_new_one() -> None:
    """What moto cannot show: EC2 answers a reused token with its (ended) instance. The provider then derives
    the next token from that instance, so a retry of the same launch walks the same chain."""
    import boto3
    from botocore.stub import Stubber

    provider = Ec2ClusterProvider(config())
    request = provider._run_request(launch(), NodeRole.MASTER, key="c0ffee-g0-master", master_url=None)
    ec2 = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y").client("ec2", region_name="eu-west-1")
    first = ins.client_token("c0ffee-g0-master", request)
    second = ins.client_token("c0ffee-g0-master", request, after="i-old")
    with Stubber(ec2) as stub:
        for token, instance, state in ((first, "i-old", "terminated"), (second, "i-new", "pending")):
            stub.add_response(
                "run_instances",
                {"Instances": [{"InstanceId": instance, "State": {"Name": state, "Code": 0}}]},
                {**request, "ClientToken": token},
            )
        assert provider._run(ec2, request, "c0ffee-g0-master")["InstanceId"] == "i-new"
        stub.assert_no_pending_responses()


def test_a_launch_that_keeps_ending_at_once_gives_up() -> None:
    import boto3
    from botocore.stub import ANY, Stubber

    provider = Ec2ClusterProvider(config())
    request = provider._run_request(launch(), NodeRole.MASTER, key="c0ffee-g0-master", master_url=None)
    ec2 = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y").client("ec2", region_name="eu-west-1")
    with Stubber(ec2) as stub:
        for n in range(8):
            ended = {"Instances": [{"InstanceId": f"i-{n}", "State": {"Name": "terminated", "Code": 48}}]}
            stub.add_response("run_instances", ended, {**request, "ClientToken": ANY})
        with pytest.raises(PermanentBackendError, match="ended at once"):
            provider._run(ec2, request, "c0ffee-g0-master")


# --- configuration --------------------------------------------------------------------------------------------


def test_config_refuses_what_would_fail_later_naming_the_setting() -> None:
    with pytest.raises(ValueError) as caught:
        config(role_arn="my-role", subnet_ids=(), ami_id="image-1", external_id="")
    for name in ("SPARK_CUSTOMER_IAM_ROLE", "SPARK_NETWORK_AWS_SUBNET_IDS", "SPARKPLANE_EC2_AMI_ID"):
        assert name in str(caught.value)
    assert "the-external-id" not in repr(config())


def test_the_services_build_the_config_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith(("SPARKPLANE_", "SPARK_", "AWS_"))]:
        monkeypatch.delenv(name)
    with pytest.raises(InvalidInput, match="SPARK_CUSTOMER_IAM_ROLE.*SPARKPLANE_EC2_AMI_ID"):
        ec2_config(Settings())
    for name, value in {
        "SPARK_CUSTOMER_IAM_ROLE": "arn:aws:iam::111122223333:role/sparkplane",
        "SPARKPLANE_EC2_EXTERNAL_ID": "ext-id-9",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "SPARK_NETWORK_AWS_SUBNET_IDS": '["subnet-1","subnet-2"]',
        "SPARK_NETWORK_AWS_SECURITY_GROUPS": "sg-1",
        "SPARKPLANE_EC2_AMI_ID": "ami-1",
        "SPARKPLANE_EC2_INSTANCE_PROFILE": "sparkplane-node",
        "SPARKPLANE_EC2_MAX_NODES": "40",
        "SPARKPLANE_AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    built = ec2_config(settings)
    assert (built.role_arn, built.external_id, built.region) == (
        settings.spark_customer_iam_role,
        "ext-id-9",
        "eu-west-1",
    )
    assert built.subnet_ids == ("subnet-1", "subnet-2") and built.security_group_ids == ("sg-1",)
    assert (built.instance_profile, built.max_nodes, built.endpoint_url) == (
        "sparkplane-node",
        40,
        "http://127.0.0.1:5000",
    )
    assert Ec2ClusterProvider(built).capacity().max_nodes == 40
    assert masked(settings)["ec2_external_id"] == "**********"


def test_importing_the_provider_does_not_import_boto3() -> None:
    code = (
        "import sys, sparkplane.backends.ec2, sparkplane.services.cluster_providers\n"
        "assert not {'boto3', 'botocore'} & set(sys.modules), sorted(m for m in sys.modules if 'boto' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
