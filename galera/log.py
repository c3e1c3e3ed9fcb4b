"""What a node's error log says about how it joined: a pure reading of MariaDB's and Galera's
own lines, shared by the runtimes, the node agent and the chaos runner.

A joiner logs the state transfer it needs (`State transfer required:` with the group's and its
own `uuid:seqno`), which member became its donor, and then either a full copy (the SST script's
`Proceeding with SST`) or an incremental one (`Receiving IST: N writesets, seqnos A-B`; the
mariabackup script then says `Running IST`). After an SST the joiner also receives an IST for
the writes made during the copy, so "SST" wins when both appear.
"""

import re
from dataclasses import dataclass

from api.remediation import JoinInfo
from api.states import JoinMethod

NO_STATE = "00000000-0000-0000-0000-000000000000"

_REQUIRED = re.compile(
    r"State transfer required:\s*\n\s*Group state: ([0-9a-f-]{36}):(-?\d+)\s*\n"
    r"\s*Local state: ([0-9a-f-]{36}):(-?\d+)"
)
_DONOR = re.compile(r"requested state transfer from '[^']*'\. Selected \d+\.\d+ \(([^)]+)\)")
_IST = re.compile(r"Receiving IST: (\d+) writesets, seqnos (-?\d+)-(-?\d+)")
_SST = re.compile(r"Proceeding with SST")
_IST_SCRIPT = re.compile(r"Running IST")


@dataclass(frozen=True)
class Join:
    method: JoinMethod
    detail: str  # why, in words: the positions, the donor, the writesets

    def info(self) -> JoinInfo:
        return JoinInfo(method=self.method, detail=self.detail)


def last_join(log_text: str) -> Join | None:
    """The last state transfer the log shows a joiner received, or None (none yet, or no
    transfer was needed: a node whose position equals the group's joins without one)."""
    required = list(_REQUIRED.finditer(log_text))
    if not required:
        return None
    last = required[-1]
    group_uuid, group_seqno, local_uuid, local_seqno = last.groups()
    after = log_text[last.end() :]
    donor_match = _DONOR.search(after)
    donor = f" from {donor_match.group(1)}" if donor_match else ""
    if _SST.search(after):
        return Join(
            JoinMethod.SST,
            f"SST{donor}: {sst_cause(group_uuid, int(group_seqno), local_uuid, int(local_seqno))}",
        )
    ist = _IST.search(after)
    if ist:
        count, first, last_seqno = ist.groups()
        return Join(
            JoinMethod.IST,
            f"IST{donor}: {count} writesets, seqnos {first}-{last_seqno} "
            f"(local {local_seqno}, group {group_seqno})",
        )
    if _IST_SCRIPT.search(after):
        return Join(JoinMethod.IST, f"IST{donor}: local {local_seqno}, group {group_seqno}")
    return None


def sst_cause(group_uuid: str, group_seqno: int, local_uuid: str, local_seqno: int) -> str:
    """Why a joiner needed a full copy, from the two positions it logged."""
    if local_uuid == NO_STATE or local_seqno < 0:
        return "the node had no committed position (new, emptied or unreadable data directory)"
    if local_uuid != group_uuid:
        return f"the node's data belongs to another cluster history ({local_uuid})"
    return (
        f"no donor's gcache still held seqnos {local_seqno + 1}-{group_seqno} "
        "(the node was behind by more than the gcache keeps)"
    )
