#!/bin/bash
# sparkplane node bootstrap. EC2 runs it once, as root, at the instance's first boot (cloud-init's user
# script). It starts one Spark standalone daemon (the master, or a worker that joins the master), then
# reports to the control plane every few seconds: the control plane cannot reach the customer's VPC, so the
# nodes push what it needs (their address, and the master's own status from its /json/ page).
#
# User data is readable by anyone allowed ec2:DescribeInstanceAttribute in this account, and by anything on
# this node through the instance metadata service. So it holds one secret only, the report token, which
# authorises nothing but posting node reports of this one cluster.
#
# Needs on the AMI: bash, curl (7.55 or newer, for -H @file), runuser, Java 17, Spark under SP_SPARK_HOME,
# and a user named by SP_RUN_AS that runs Spark (never root).
set -euo pipefail

# --- rendered by sparkplane for this node; every value is shell-quoted ---
@SPARKPLANE_VALUES@
# --- end of rendered values ---

log() { echo "sparkplane bootstrap: $*"; }

# The primary private address: the one other nodes and the master's worker list know this node by.
HOST=$(hostname -I | awk '{print $1}')
if [ -z "$HOST" ]; then
  log "this instance has no IPv4 address; giving up"
  exit 1
fi

# Spark reads spark-env.sh from SPARK_CONF_DIR: the cluster's spark_env_vars go there.
CONF_DIR=/etc/sparkplane/spark-conf
install -d -m 0755 "$CONF_DIR"
# (The ${a[@]+...} form: bash before 4.4 calls an empty array unbound under set -u.)
printf '%s\n' "# written by the sparkplane bootstrap: the cluster's spark_env_vars" \
  ${SP_SPARK_ENV[@]+"${SP_SPARK_ENV[@]}"} > "$CONF_DIR/spark-env.sh"
install -d -o "$SP_RUN_AS" -m 0755 /var/log/sparkplane /var/lib/sparkplane/work

spark_daemon() {  # spark-class <main class> <args>, as SP_RUN_AS, in the background, logging to a file
  setsid runuser -u "$SP_RUN_AS" -- env SPARK_CONF_DIR="$CONF_DIR" SPARK_LOCAL_IP="$HOST" \
    SPARK_WORKER_DIR=/var/lib/sparkplane/work "$SP_SPARK_HOME/bin/spark-class" "$@" \
    </dev/null >>"/var/log/sparkplane/$SP_ROLE.log" 2>&1 &
}

if [ "$SP_ROLE" = master ]; then
  spark_daemon org.apache.spark.deploy.master.Master --host "$HOST" --port 7077 --webui-port 8080
  SPARK_URL="spark://$HOST:7077"
else
  spark_daemon org.apache.spark.deploy.worker.Worker --host "$HOST" --port 7078 --webui-port 8081 \
    --cores "$SP_WORKER_CORES" --memory "${SP_WORKER_MEMORY_MB}m" "$SP_MASTER_URL"
  SPARK_URL="spark://$HOST:7078"  # the worker's own address, as the master's worker list shows it
fi
log "started the Spark $SP_ROLE at $SPARK_URL"

# The token goes in a root-only file, not on a command line that every process on the node can list.
install -d -m 0700 /run/sparkplane
(umask 077 && printf 'Authorization: Bearer %s\n' "$SP_REPORT_TOKEN" > /run/sparkplane/report-headers)

report_forever() {
  while true; do
    master_json=null
    if [ "$SP_ROLE" = master ]; then
      master_json=$(curl -sf --max-time 5 "http://$HOST:8080/json/") || master_json=null
      [ -n "$master_json" ] || master_json=null
    fi
    # Every %s below is a node key, a role, an address or a spark:// URL: none needs JSON escaping.
    printf '{"key":"%s","role":"%s","host":"%s","spark_url":"%s","master_json":%s}' \
        "$SP_KEY" "$SP_ROLE" "$HOST" "$SPARK_URL" "$master_json" |
      curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' -H @/run/sparkplane/report-headers \
        --data-binary @- "$SP_REPORT_URL" >/dev/null ||
      log "report to the control plane failed; trying again in ${SP_REPORT_INTERVAL}s"
    sleep "$SP_REPORT_INTERVAL"
  done
}
# Both background processes outlive this script: cloud-init's final stage ends only its own process.
report_forever </dev/null >>/var/log/sparkplane/report.log 2>&1 &
log "reporting to the control plane every ${SP_REPORT_INTERVAL}s"
