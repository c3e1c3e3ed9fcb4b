"""haproxy.cfg in its two forms: the local one (one HAProxy, a sticky writer, fixed addresses)
and the Kubernetes one (several replicas that must pick the same writer, pods' DNS names,
bound to the pod's IP through an environment variable). HAProxy itself checks both."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from activities.local import haproxy

HAPROXY = "/usr/sbin/haproxy"
POD_IP = "${MYSQLOPS_POD_IP}"
RESOLUTION = "resolvers kube init-addr last,libc,none"


def render_local(tmp_path: Path) -> str:
    servers = [haproxy.Server(f"demo-{i}", "127.0.0.1", 33010 + i, 33050 + i) for i in range(3)]
    return haproxy.render(
        cluster="demo",
        host="127.0.0.1",
        writer_port=33006,
        reader_port=33007,
        stats_port=33008,
        stats_socket=tmp_path / "haproxy.sock",
        state_file=tmp_path / "haproxy.state",
        servers=servers,
    )


def render_kube(tmp_path: Path) -> str:
    """As the Kubernetes runtime renders it: peers by their headless Service's names (which do
    not resolve here), every port the pod's, the host the pod's IP from the environment."""
    servers = [
        haproxy.Server(f"db-{i}", f"db-{i}.db-hl.ns.svc.cluster.local", 3306, 8080)
        for i in range(3)
    ]
    return haproxy.render(
        cluster="db",
        host=POD_IP,
        writer_port=3306,
        reader_port=3307,
        stats_port=8404,
        stats_socket=tmp_path / "haproxy.sock",
        state_file=tmp_path / "haproxy.state",
        servers=servers,
        sticky=False,
        resolve=True,
    )


def section(text: str, header: str) -> list[str]:
    """The indented lines of the section that starts with the line `header`."""
    found = re.search(rf"^{re.escape(header)}\n((?:[ \t].*\n)*)", text, re.M)
    assert found, f"no section {header!r}"
    return found.group(1).splitlines()


def server_lines(text: str, backend: str) -> list[str]:
    return [line for line in section(text, f"backend {backend}") if line.startswith("    server ")]


def check(text: str, tmp_path: Path, pod_ip: str | None = None) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "MYSQLOPS_POD_IP"}
    if pod_ip is not None:
        env["MYSQLOPS_POD_IP"] = pod_ip
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize("form", ["local", "kube"])
def test_haproxy_accepts_both_forms(form: str, tmp_path: Path) -> None:
    """The Kubernetes form starts although no server's name resolves (`init-addr ...,none`)."""
    if form == "local":
        result = check(render_local(tmp_path), tmp_path)
    else:
        result = check(render_kube(tmp_path), tmp_path, pod_ip="127.0.0.1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bind_address_comes_from_the_environment(tmp_path: Path) -> None:
    """`bind "${MYSQLOPS_POD_IP}:3306"` is expanded: an address that is no address fails."""
    text = render_kube(tmp_path)
    assert section(text, "frontend db-writer")[0] == '    bind "${MYSQLOPS_POD_IP}:3306"'
    result = check(text, tmp_path, pod_ip="no-such-host.invalid")
    assert result.returncode != 0
    assert "no-such-host.invalid" in result.stdout + result.stderr


def test_every_bind_is_quoted(tmp_path: Path) -> None:
    for text, host in ((render_local(tmp_path), "127.0.0.1"), (render_kube(tmp_path), POD_IP)):
        binds = [line.strip() for line in text.splitlines() if line.strip().startswith("bind ")]
        assert len(binds) == 3
        assert all(re.fullmatch(rf'bind "{re.escape(host)}:\d+"', bind) for bind in binds), binds


def test_local_writer_is_sticky(tmp_path: Path) -> None:
    text = render_local(tmp_path)
    writer = section(text, "backend writer")
    assert "    stick-table type integer size 1" in writer
    assert "    stick on int(1)" in writer
    servers, readers = server_lines(text, "writer"), server_lines(text, "reader")
    assert len(servers) == len(readers) == 3
    assert not servers[0].endswith(" backup")
    assert all(line.endswith(" backup") for line in servers[1:])
    assert not any("backup" in line for line in readers)
    assert all("inter 1s" in line for line in servers + readers)
    assert "shutdown-backup-sessions" not in text
    assert "resolvers" not in text
    assert "init-addr" not in text


def test_kube_writer_is_the_first_healthy_server_in_a_fixed_order(tmp_path: Path) -> None:
    """No per-process state: every replica picks the first healthy server of the same list,
    and all of them move writes back to the first one as soon as it is healthy again."""
    text = render_kube(tmp_path)
    writer = section(text, "backend writer")
    assert not any("stick" in line for line in writer)  # no table, no `stick on`
    assert "allbackups" not in text  # only the first healthy backup takes connections
    servers = server_lines(text, "writer")
    assert [line.split()[1] for line in servers] == ["db-0", "db-1", "db-2"]
    assert not servers[0].endswith(" backup")
    assert all(line.endswith(" backup") for line in servers[1:])
    assert all(" on-marked-up shutdown-backup-sessions" in line for line in servers)
    assert all(" on-marked-down shutdown-sessions" in line for line in servers)
    readers = server_lines(text, "reader")
    assert len(readers) == 3
    assert not any("backup" in line for line in readers)  # every serving node takes reads


def test_kube_servers_resolve_at_run_time(tmp_path: Path) -> None:
    """Pods get a new IP when they are recreated: HAProxy resolves the names as it runs."""
    text = render_kube(tmp_path)
    assert section(text, "resolvers kube") == ["    parse-resolv-conf"]
    servers = server_lines(text, "writer") + server_lines(text, "reader")
    assert len(servers) == 6
    for line in servers:
        assert f" {RESOLUTION}" in line, line
        server = r" db-\d\.db-hl\.ns\.svc\.cluster\.local:3306 check port 8080 "
        assert re.search(server, line), line
