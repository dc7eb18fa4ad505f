# Sourced by scripts/up and scripts/test: makes a virtual environment for this checkout and activates it.
# The environment lives outside the clone, keyed by the lock file, so a fresh clone reuses it and a changed
# lock file gets a new one. Nothing here needs a manual step on a fresh machine.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache_root=${SPARKPLANE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sparkplane}
lock_key=$(cat "$repo_root/requirements.lock" "$repo_root/scripts/bootstrap.sh" | sha256sum | cut -c1-16)
venv="$cache_root/venv-$lock_key"

if ! command -v java >/dev/null 2>&1; then
  echo "sparkplane needs Java 17 for Spark; installing openjdk-17-jre-headless" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi

# The Livy compatibility tests use sparkmagic, whose Kerberos support (gssapi, krb5) builds from source.
if ! command -v krb5-config >/dev/null 2>&1; then
  echo "installing the Kerberos headers (libkrb5-dev) that sparkmagic's dependencies build against" >&2
  apt-get update -qq && apt-get install -y -qq --no-install-recommends libkrb5-dev gcc >/dev/null
fi

# Where `pip install --user` puts uv: found there even from a shell with another environment active, whose
# python3.11 may have no pip to install it again with.
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  python3.11 -m pip install --quiet --user uv 2>/dev/null || python3.11 -m pip install --quiet uv
fi

mkdir -p "$cache_root"
if [ ! -f "$venv/.complete" ]; then
  # Several clones (or a test run and a developer) may bootstrap at once: one builds, the others wait.
  exec 9>"$cache_root/.build.lock"
  flock 9
  if [ ! -f "$venv/.complete" ]; then
    echo "Creating the Python environment in $venv (once per lock file)..." >&2
    rm -rf "$venv"
    uv venv --quiet --python 3.11 "$venv"
    # Compiled now, once: where PYTHONDONTWRITEBYTECODE is set (as on CI's machines), Python never writes
    # bytecode, and every process (each role, each session's agent, each CLI call) compiled the modules it
    # imported from source: 6.6 s to import the api and worker, 2.9 s compiled; pyspark 1.4 s, 0.4 s.
    VIRTUAL_ENV="$venv" uv pip sync --quiet --compile-bytecode "$repo_root/requirements.lock"
    touch "$venv/.complete"
  fi
  flock -u 9
fi
# The project itself is installed editable every time: cheap, and the venv may be shared by several clones.
VIRTUAL_ENV="$venv" uv pip install --quiet --no-deps -e "$repo_root"

# shellcheck disable=SC1091
source "$venv/bin/activate"
# sparkplane's own modules likewise, in their __pycache__ folders (ignored by git); only changed files are
# compiled again (2.9 -> 2.1 s to import the api and worker).
python -m compileall -q "$repo_root/src" >/dev/null
SPARK_HOME=$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
