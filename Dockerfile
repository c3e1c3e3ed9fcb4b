# The mysqlops image: operator, worker and node agent in one, chosen by command:
#   mysqlops operator | mysqlops worker | mysqlops agent ...
# Runs as uid 10001, the uid of the Helm chart's securityContext (charts/mysqlops).
FROM debian:bookworm-slim

# The Debian packages scripts/setup.sh installs (its PACKAGES array: tests/chart checks that the
# two lists agree; tini, the init that reaps what the agent's children leave, is the node
# container's PID 1 in the tests' kubelet too), then what the image itself needs: Python with
# venv, CA certificates (TLS to Temporal).
ARG PACKAGES="mariadb-server mariadb-client galera-4 mariadb-backup haproxy socat zstd procps sysbench iptables prometheus prometheus-mysqld-exporter tini"
ARG IMAGE_PACKAGES="python3 python3-venv ca-certificates"

# Packages must not start the system-wide MariaDB (policy-rc.d), as in scripts/setup.sh.
RUN set -eux; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
    chmod +x /usr/sbin/policy-rc.d; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $PACKAGES $IMAGE_PACKAGES; \
    rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d

# The project and its pinned dependencies, in a virtualenv (only what the wheel ships).
ENV VIRTUAL_ENV=/opt/mysqlops \
    PATH=/opt/mysqlops/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt ./
COPY api ./api
COPY galera ./galera
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
RUN set -eux; \
    python3 -m venv "$VIRTUAL_ENV"; \
    "$VIRTUAL_ENV/bin/pip" install --no-cache-dir -c constraints.txt .; \
    mysqlops --help > /dev/null; \
    cd /; \
    rm -rf /src

# A non-root user: the chart runs the containers as this uid (runAsUser 10001).
RUN set -eux; \
    groupadd --system --gid 10001 mysqlops; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mysqlops --create-home \
        --shell /usr/sbin/nologin mysqlops
# pip compiled the modules at install; the root filesystem is read-only at run time.
ENV HOME=/var/lib/mysqlops \
    MYSQLOPS_HOME=/var/lib/mysqlops \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/mysqlops
USER 10001:10001

ENTRYPOINT ["/usr/bin/tini", "--", "mysqlops"]
CMD ["--help"]
