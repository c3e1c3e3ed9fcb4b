"""The cluster's lifecycle phases and the only moves between them (docs/design.md, "Phases").

| from     | to       | by                                                     |
|----------|----------|--------------------------------------------------------|
| Creating | Running  | the create task, once every node is Synced             |
| Creating | Deleting | delete (a create that failed can always be deleted)    |
| Running  | Stopped  | stop: every node shut down cleanly, the writer last    |
| Running  | Deleting | delete                                                 |
| Stopped  | Running  | start: bootstrap from the most advanced node, join     |
| Stopped  | Deleting | delete                                                 |
| Deleting | Deleted  | the delete task, once the nodes are stopped and retired |

A delete that fails leaves the phase Deleting; only a new delete is accepted there, and it
runs the (idempotent) teardown again. Deleted is final: the workflow ends. Health (Green,
Yellow, Red) is orthogonal: any phase may be any health; repairs run only while Running.
"""

from api.states import Phase

MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.CREATING: frozenset({Phase.RUNNING, Phase.DELETING}),
    Phase.RUNNING: frozenset({Phase.STOPPED, Phase.DELETING}),
    Phase.STOPPED: frozenset({Phase.RUNNING, Phase.DELETING}),
    Phase.DELETING: frozenset({Phase.DELETED}),
    Phase.DELETED: frozenset(),
}


def may_move(before: Phase, after: Phase) -> bool:
    return before is after or after in MOVES[before]
