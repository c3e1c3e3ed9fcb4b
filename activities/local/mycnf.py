"""Rendering of a local node's my.cnf: managed settings first, then the user's allowed options."""

import os
from dataclasses import dataclass

from api.base import quantity_bytes
from api.cluster import ConfigValue, MySQLClusterSpec

GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so"
SST_METHOD = "mariabackup"

# Group-communication timeouts. A commit needs every member of the group view, so a dead node
# (or one cut off by the network) stalls writes until the survivors suspect it and install a
# view without it, and a cut-off writer leaves the load balancer only once it sees itself
# outside the Primary component. Galera's defaults (suspect 5 s, checked every 1 s, join
# messages resent every 1 s) make that 6 s or more; these make it about 2 s (bench/faults.py).
# Galera's rule keepalive <= inactivity check <= suspect <= inactive holds, and six keepalives
# may be missed before a suspicion, so a busy 2-core machine is not taken for a dead one
# (bench/faults.py counts suspicions of live nodes).
# The install timeout must leave room above the suspect timeout: a survivor may hear a dead
# member's last message only when the membership round starts (a leave, or messages relayed
# by the other survivor), and suspects it up to 1.75 s later. If the round's install timer
# expires first, each survivor declares the other inactive (their join messages disagree) and
# both end non-Primary for good: Galera re-forms a Primary only with every member of the last
# one. Left unset it is half the inactive timeout, 2 s, the suspect timeout itself (Galera's
# defaults: 7.5 s against 5 s); set to the most Galera allows, the inactive timeout.
EVS_OPTIONS = (
    "evs.suspect_timeout=PT1.5S",
    "evs.inactive_timeout=PT4S",
    "evs.install_timeout=PT4S",
    "evs.keepalive_period=PT0.25S",
    "evs.inactive_check_period=PT0.25S",
    "evs.join_retrans_period=PT0.5S",
)


@dataclass(frozen=True)
class NodeConfig:
    cluster_name: str
    node_name: str
    host: str
    port: int
    galera_port: int
    ist_port: int
    sst_port: int
    peers: tuple[str, ...]  # host:galera_port of every member, this node included
    datadir: str
    socket: str
    pid_file: str
    error_log: str
    ordinal: int = 0
    run_as_root: bool = os.geteuid() == 0


def _value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


def render(node: NodeConfig, spec: MySQLClusterSpec) -> str:
    provider_options = ";".join(
        (
            f"gmcast.listen_addr=tcp://{node.host}:{node.galera_port}",
            f"ist.recv_addr={node.host}:{node.ist_port}",
            # The writes a restarted node missed come from a donor's gcache (IST); kept across
            # restarts, so a node that bootstraps after a whole-cluster crash can serve them.
            f"gcache.size={quantity_bytes(spec.mysql.gcache_size)}",
            "gcache.recover=yes",
            *EVS_OPTIONS,
        )
    )
    managed: dict[str, ConfigValue] = {
        "datadir": node.datadir,
        "socket": node.socket,
        "pid_file": node.pid_file,
        "log_error": node.error_log,
        "port": node.port,
        "bind_address": node.host,
        "binlog_format": "ROW",
        "default_storage_engine": "InnoDB",
        "innodb_autoinc_lock_mode": 2,
        # Durable by default: with 0, Galera clusters lose acknowledged commits on a crash.
        "innodb_flush_log_at_trx_commit": 1,
        "innodb_buffer_pool_size": quantity_bytes(spec.mysql.innodb_buffer_pool_size),
        "innodb_log_file_size": 48 * 1024**2,
        "skip_name_resolve": "ON",
        "max_connections": 200,
        "wsrep_on": "ON",
        "wsrep_provider": GALERA_PROVIDER,
        "wsrep_cluster_name": node.cluster_name,
        "wsrep_cluster_address": "gcomm://" + ",".join(node.peers),
        "wsrep_node_name": node.node_name,
        "wsrep_node_address": f"{node.host}:{node.galera_port}",
        "wsrep_sst_method": SST_METHOD,
        "wsrep_sst_receive_address": f"{node.host}:{node.sst_port}",
        "wsrep_provider_options": f'"{provider_options}"',
        # A binary log with one GTID stream for the whole cluster: every backup records the
        # GTID of its point (for point-in-time recovery and asynchronous replicas). Replicated
        # writes carry the cluster's domain and server id; a node's local writes its own domain.
        "log_bin": "mariadb-bin",
        "log_slave_updates": "ON",
        "wsrep_gtid_mode": "ON",
        "wsrep_gtid_domain_id": 1,
        "server_id": 1,
        "gtid_domain_id": 100 + node.ordinal,
        "max_binlog_size": 64 * 1024**2,
        "binlog_expire_logs_seconds": 7 * 24 * 3600,
    }
    if node.run_as_root:
        managed["user"] = "root"
    settings = managed | dict(spec.mysql.config)
    lines = [
        "# Written by mysqlops; edits are overwritten. Set options in spec.mysql.config.",
        "[mariadbd]",
    ]
    lines += [f"{name} = {_value(value)}" for name, value in settings.items()]
    lines.append("")
    return "\n".join(lines)
