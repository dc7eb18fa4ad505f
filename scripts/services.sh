# Sourced by scripts/test: makes sure PostgreSQL and RabbitMQ run on this machine (starting or installing them
# when they do not), and creates the test database and vhost. Exports their URLs for the tests.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package)..." >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  echo "starting PostgreSQL..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { echo "PostgreSQL did not start" >&2; exit 1; }
fi

rabbit_up() { rabbitmqctl -q await_startup --timeout 2 >/dev/null 2>&1; }
if ! rabbit_up; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "installing RabbitMQ (Debian package)..." >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
  fi
  echo "starting RabbitMQ..." >&2
  rabbitmq-server -detached >/dev/null 2>&1 || true
  rabbitmqctl -q await_startup --timeout 120 >/dev/null
  # The node may be running with its app stopped (after `rabbitmqctl stop_app`).
  rabbitmqctl -q start_app >/dev/null 2>&1 || true
fi

test_db=${SPARKPLANE_TEST_DB:-sparkplane_test}
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$test_db'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc "create database $test_db"
fi
test_vhost=${SPARKPLANE_TEST_VHOST:-sparkplane_test}
rabbitmqctl -q add_vhost "$test_vhost" >/dev/null 2>&1 || true
rabbitmqctl -q set_permissions -p "$test_vhost" guest '.*' '.*' '.*' >/dev/null

export SPARKPLANE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$test_db"
export SPARKPLANE_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$test_vhost"
export SPARKPLANE_TEST_PG_ADMIN_URL="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
