"""Fault handling in the cluster workflow: decide from the evidence, repair through the queue.

A mixin of `ClusterWorkflow` (workflows/cluster.py), kept apart so each file reads on its own:
the decision is `faults.diagnose` plus the `PLAYBOOKS` table; here is how a chosen playbook is
queued, carried out step by step with a record, escalated, or handed to a human.
"""

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.cluster import ClusterActivities
    from activities.messages import (
        NodeInput,
        PositionsInput,
        StartInput,
        StopInput,
    )
    from activities.runtime import StopMode
    from api.cluster import MySQLClusterSpec
    from api.layout import ClusterLayout
    from api.messages import (
        UPDATE_FORCE_ACTION,
        UPDATE_RESUME,
        ClusterMemory,
        CommandResult,
        NodeMemory,
        QueuedTask,
    )
    from api.remediation import (
        Action,
        ActionRecord,
        FaultClass,
        ForceActionRequest,
        JoinInfo,
        ManualIntervention,
        Outcome,
        RemediationRecord,
        ResumeRequest,
    )
    from api.states import Phase
    from galera.bootstrap import NoSafeBootstrap, choose_bootstrap, must_keep_aside
    from galera.faults import PLAYBOOKS, Fault, diagnose, next_deadline
    from galera.forcing import refusal
    from galera.position import GaleraPosition, NodePosition
    from workflows.search import CLUSTER_STATE, MANUAL_INTERVENTION

REMEDIATIONS_KEPT = 20
REJOIN_TIMEOUT = timedelta(minutes=2)  # a restarted partitioned node that cannot join by then

Step = Callable[[], Awaitable[str | None]]  # one recorded step of a playbook action


class TaskFailed(Exception):
    """A task could not finish; the reason goes to the status."""


class Refused(TaskFailed):
    """A forced action found unsafe when it was about to act: nothing was done."""


class Repairs:
    """Fault handling for the cluster workflow; the host class provides what is declared."""

    memory: ClusterMemory
    spec: MySQLClusterSpec
    stale: bool
    decide: bool
    changed_at: datetime

    if TYPE_CHECKING:

        async def _act(
            self,
            activity: Callable[..., Any],
            argument: Any,
            timeout: timedelta = ...,
            heartbeat: timedelta | None = ...,
            summary: str | None = ...,
        ) -> Any: ...

        async def _wait_synced(
            self,
            layout: ClusterLayout,
            node: str,
            joining: bool = ...,
            timeout: timedelta | None = ...,
        ) -> JoinInfo | None: ...

        async def _start_cluster(
            self, layout: ClusterLayout, bootstrap_from: str | None = ...
        ) -> None: ...

        async def _survey(self, layout: ClusterLayout) -> None: ...

        def _layout_or_fail(self) -> ClusterLayout: ...

        def _transition(self, subject: str, before: str, after: str, reason: str) -> None: ...

        def _show_details(self) -> None: ...

        def _refuse_when_ending(self) -> None: ...

        def _node(self, name: str) -> NodeMemory | None: ...

    def _decide(self) -> None:
        """Diagnose the evidence; queue the playbook's repair, escalate, or pause for a human."""
        rules = self.spec.remediation
        if self.memory.phase != Phase.RUNNING.value or self.memory.manual or not rules.enabled:
            return
        if self.stale or workflow.now() < self.changed_at + self._settle():
            return  # the main loop wakes when the evidence has held still
        fault = diagnose(
            self.memory.nodes,
            self.memory.primary,
            workflow.now(),
            timedelta(seconds=rules.hung_grace_seconds),
            rules.maintenance,
            self.memory.resumed_from,
            timedelta(seconds=rules.partition_grace_seconds),
        )
        while fault is not None:
            playbook = PLAYBOOKS[fault.fault]
            attempts = self.memory.attempts.get(_attempt_key(fault), 0)
            limit = 1 if playbook.action is Action.REPROVISION_NODE else rules.max_attempts_per_node
            if playbook.action is Action.MANUAL_INTERVENTION:
                return self._pause(fault, f"{fault.fault.value} needs a human")
            if attempts < limit:
                break
            if playbook.escalate_to is None:
                return self._pause(
                    fault, f"{fault.fault.value} not repaired after {attempts} attempt(s)"
                )
            fault = Fault(
                playbook.escalate_to,
                fault.nodes,
                f"{fault.fault.value} not repaired after {attempts} attempt(s); {fault.evidence}",
            )
        if fault is None:
            return
        retry_after = self.memory.retry_after.get(_attempt_key(fault))
        if retry_after is not None and workflow.now() < retry_after:
            return  # the main loop wakes when the backoff ends
        self.memory.task_counter += 1
        record = RemediationRecord(
            id=f"remediate-{self.memory.task_counter}",
            fault=fault.fault,
            nodes=list(fault.nodes),
            evidence=fault.evidence,
            attempt=self.memory.attempts.get(_attempt_key(fault), 0) + 1,
            started_at=workflow.now(),
        )
        action = PLAYBOOKS[fault.fault].action.value
        self._queue_record("remediate", record, f"{record.id}: {action}")

    def _queue_record(
        self,
        kind: str,
        record: RemediationRecord,
        what: str,
        forced: ForceActionRequest | None = None,
    ) -> None:
        """Queue the task that will carry out (and complete) this record."""
        nodes = ", ".join(record.nodes)
        self.memory.queue.append(
            QueuedTask(
                id=record.id,
                kind=kind,
                requested_at=workflow.now(),
                reason=f"{record.fault.value} {nodes} (attempt {record.attempt}) {what}",
                remediation=record,
                forced=forced,
            )
        )

    def _time_to_next_decision(self) -> timedelta | None:
        """Until a backoff or a hung node's grace period ends; None when nothing is pending."""
        rules = self.spec.remediation
        grace = timedelta(seconds=rules.hung_grace_seconds)
        cut_off = timedelta(seconds=rules.partition_grace_seconds)
        moments = list(self.memory.retry_after.values())
        if workflow.now() < self.changed_at + self._settle():
            moments.append(self.changed_at + self._settle())
        if (unknown := next_deadline(self.memory.nodes, grace, cut_off)) is not None:
            moments.append(unknown)
        if not moments or self.memory.manual:
            return None
        return max(min(moments) - workflow.now(), timedelta(milliseconds=100))

    def _settle(self) -> timedelta:
        return timedelta(seconds=self.spec.remediation.settle_seconds)

    async def _remediate(self, task: QueuedTask) -> None:
        record = task.remediation
        assert record is not None
        key = _attempt_key(Fault(record.fault, tuple(record.nodes), record.evidence))
        self.memory.attempts[key] = record.attempt
        layout = self._layout_or_fail()
        action = PLAYBOOKS[record.fault].action
        await self._carry_out(record, action, self._playbook_steps(action, record.nodes, layout))
        if record.outcome is Outcome.FAILED:
            backoff = self.spec.remediation.backoff_seconds * 2 ** (record.attempt - 1)
            self.memory.retry_after[key] = workflow.now() + timedelta(seconds=backoff)

    async def _force(self, task: QueuedTask) -> None:
        """An operator's forced action: checked again on fresh evidence, then carried out."""
        request, record = task.forced, task.remediation
        assert request is not None and record is not None
        layout = self._layout_or_fail()
        action = Action(request.action.value)

        async def check() -> str | None:
            await self._survey(layout)  # the queue may have waited: judge what is true now
            found = refusal(request, self.memory.nodes, self.memory.primary)
            if found is None:
                return "safety checks passed"
            if found.overridable and request.force:
                return f"forced past: {found.reason}"
            raise Refused(found.reason)

        steps: list[tuple[str | None, Step]] = [(request.node, check)]
        if action is Action.BOOTSTRAP_FROM_NODE:

            async def bootstrap_from() -> str | None:
                return await self._bootstrap_from(layout, request.node, request.force)

            steps.append((request.node, bootstrap_from))
        else:
            steps.extend(self._playbook_steps(action, [request.node], layout))
        await self._carry_out(record, action, steps)

    async def _carry_out(
        self, record: RemediationRecord, action: Action, steps: list[tuple[str | None, Step]]
    ) -> None:
        """Run the steps in order, each recorded with its outcome; the first failure ends it."""
        record.started_at = workflow.now()
        self.memory.remediations.append(record)
        del self.memory.remediations[:-REMEDIATIONS_KEPT]
        reason = f"{record.id} {action.value} {', '.join(record.nodes)}"
        self._transition("cluster", record.fault.value, "repairing", reason)
        try:
            for node, step in steps:
                entry = ActionRecord(action=action, node=node, started_at=workflow.now())
                record.actions.append(entry)
                try:
                    entry.detail = await step() or ""
                    entry.outcome = Outcome.SUCCEEDED
                finally:
                    entry.ended_at = workflow.now()
                    entry.join = self._join_during(node, entry.started_at)
                    if entry.outcome is Outcome.RUNNING:
                        entry.outcome = Outcome.FAILED
            record.outcome = Outcome.SUCCEEDED
        except (ActivityError, TaskFailed, NoSafeBootstrap) as error:
            cause = error.cause if isinstance(error, ActivityError) and error.cause else error
            record.outcome = Outcome.REFUSED if isinstance(error, Refused) else Outcome.FAILED
            if record.actions:
                record.actions[-1].detail = str(cause)
                record.actions[-1].outcome = record.outcome
        finally:
            record.ended_at = workflow.now()
            self._transition("cluster", "repairing", record.outcome.value, reason)

    def _playbook_steps(
        self, action: Action, nodes: list[str], layout: ClusterLayout
    ) -> list[tuple[str | None, Step]]:
        """The steps of one playbook action, each a coroutine factory recorded separately."""

        def restart(node: str, kill_first: bool = False) -> Step:
            async def run() -> str | None:
                if kill_first:
                    await self._act(
                        ClusterActivities.stop_node,
                        StopInput(layout=layout, node=node, mode=StopMode.KILL),
                    )
                down = kill_first or self._is_down(node)
                kept = await self._keep_unreadable_data(layout, node) if down else None
                await self._act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
                try:
                    join = await self._wait_synced(layout, node)
                except ActivityError:
                    # A joiner that found no Primary must not linger half-started. It serves
                    # nothing and may not heed SIGTERM while it waits for a state transfer.
                    await self._act(
                        ClusterActivities.stop_node,
                        StopInput(layout=layout, node=node, mode=StopMode.KILL),
                    )
                    raise
                return "; ".join(text for text in (kept, join and join.detail) if text) or None

            return run

        async def bootstrap() -> str | None:
            await self._start_cluster(layout)
            return None

        def reprovision(node: str) -> Step:
            async def run() -> str | None:
                await self._act(ClusterActivities.stop_node, StopInput(layout=layout, node=node))
                kept: str = await self._act(
                    ClusterActivities.set_aside_data, NodeInput(layout=layout, node=node)
                )
                await self._act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
                join = await self._wait_synced(layout, node)
                how = f"; {join.detail}" if join else ""
                return f"old data directory kept at {kept} (SST on purpose){how}"

            return run

        async def reform() -> str | None:
            return await self._reform_primary(layout)

        def rejoin(node: str) -> Step:
            async def run() -> str | None:
                # Cut off from the Primary component long past the grace period: a fresh
                # start asks the group again. Its data is never touched, and if it still
                # cannot reach the others it stays up, outside the load balancer.
                await self._act(ClusterActivities.stop_node, StopInput(layout=layout, node=node))
                await self._act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
                join = await self._wait_synced(layout, node, timeout=REJOIN_TIMEOUT)
                return join.detail if join else None

            return run

        if action is Action.RESTART_NODE:
            return [(node, restart(node)) for node in nodes]
        if action is Action.KILL_AND_RESTART_NODE:
            return [(node, restart(node, kill_first=True)) for node in nodes]
        if action is Action.BOOTSTRAP_MOST_ADVANCED:
            return [(None, bootstrap)]
        if action is Action.REFORM_PRIMARY:
            return [(None, reform)]
        if action is Action.REPROVISION_NODE:
            return [(node, reprovision(node)) for node in nodes]
        if action is Action.RESTART_RUNNING_NODE:
            return [(node, rejoin(node)) for node in nodes]
        raise TaskFailed(f"no steps for {action.value}")

    def _join_during(self, node: str | None, since: datetime) -> JoinInfo | None:
        """How the step's node rejoined, if it rejoined during the step."""
        seen = self._node(node) if node else None
        join = seen.last_join if seen else None
        return join if join and join.at and join.at >= since else None

    def _is_down(self, node: str) -> bool:
        seen = self._node(node)
        return seen is not None and seen.facts.process_alive is False

    async def _keep_unreadable_data(self, layout: ClusterLayout, node: str) -> str | None:
        """Before a stopped node starts: move its data directory aside when its committed
        position cannot be read (`bootstrap.must_keep_aside`); why, and where it went."""
        if not workflow.patched("keep-unreadable-data"):
            return None  # histories from before this step replay as they ran
        seen: list[NodePosition] = await self._act(
            ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=[node])
        )
        position = seen[0].position
        why = must_keep_aside(position)
        if why is None and position.unreadable and not position.empty:
            # The storage failed: starting would fail the same way. The next look at the node
            # sees these errors and hands the fault to a human.
            raise TaskFailed(f"{node} cannot start: {position.unreadable}")
        if why is None:
            return None
        where: str = await self._act(
            ClusterActivities.set_aside_data, NodeInput(layout=layout, node=node)
        )
        return f"{why}; old data directory kept at {where}"

    async def _reform_primary(self, layout: ClusterLayout) -> str:
        """Quorum lost: running nodes sit outside any Primary component, the others are down.
        Bootstrap the most advanced node: a running one in place (pc.bootstrap), or, when a
        stopped node is ahead, stop the running ones first and start the cluster from it."""
        await self._survey(layout)
        if self.memory.primary:
            return "a Primary component re-formed on its own"
        live = [n for n in self.memory.nodes if n.facts.process_alive]
        for silent in [n for n in live if not n.facts.reachable]:
            # Still starting or hung: it serves nothing; stopped, its position can be read.
            await self._act(
                ClusterActivities.stop_node,
                StopInput(layout=layout, node=silent.name, mode=StopMode.KILL),
            )
        live = [n for n in live if n.facts.reachable]
        answering = {n.name for n in live}
        dead = [n.name for n in self.memory.nodes if n.name not in answering]
        stored: list[NodePosition] = (
            await self._act(
                ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=dead)
            )
            if dead
            else []
        )
        positions = stored + [_committed(n) for n in live]
        # Equally advanced, a live node is Primary in place: nothing has to stop and restart.
        prefer = frozenset(answering) if workflow.patched("reform-prefers-live") else frozenset()
        choice = choose_bootstrap(positions, {n.name: n.ordinal for n in layout.nodes}, prefer)
        self._transition("cluster", "QuorumLost", "bootstrapping", choice.reason)
        if choice.node in dead:
            for running in live:
                await self._act(
                    ClusterActivities.stop_node, StopInput(layout=layout, node=running.name)
                )
            await self._start_cluster(layout)
            return choice.reason
        await self._act(
            ClusterActivities.bootstrap_primary,
            NodeInput(layout=layout, node=choice.node),
            summary=f"pc.bootstrap on {choice.node}: {choice.reason}",
        )
        await self._wait_synced(layout, choice.node, joining=False)
        for node in dead:
            await self._act(ClusterActivities.start_node, StartInput(layout=layout, node=node))
            await self._wait_synced(layout, node)
        return choice.reason

    async def _bootstrap_from(self, layout: ClusterLayout, node: str, forced: bool) -> str:
        """Start the cluster from the node an operator named. Refused, unless forced, when the
        positions do not prove it the most advanced; decided before anything is touched. Then
        every node ahead of it (or of another history) has its data directory moved aside,
        kept, so that it rejoins by SST."""
        live = [n for n in self.memory.nodes if n.facts.process_alive]
        silent = [n.name for n in live if not n.facts.reachable]
        if silent and not forced:
            raise Refused(f"{', '.join(silent)} run but do not answer: positions unknown")
        stopped = [n.name for n in self.memory.nodes if not n.facts.process_alive]
        positions: list[NodePosition] = (
            await self._act(
                ClusterActivities.node_positions, PositionsInput(layout=layout, nodes=stopped)
            )
            if stopped
            else []
        )
        positions += [_committed(n) for n in live if n.facts.reachable]
        if any(p.node == node and p.position.empty for p in positions):
            raise Refused(f"{node} has no data directory: there is nothing to start from")
        try:
            best = choose_bootstrap(positions, {n.name: n.ordinal for n in layout.nodes})
            verdict = best.reason
        except NoSafeBootstrap as error:
            best, verdict = None, str(error)
        if best is None or best.node != node:
            verdict = f"{node} is not proven the most advanced: {verdict}"
            if not forced:
                raise Refused(verdict)
            verdict = f"forced past: {verdict}"
        for running in live:
            mode = StopMode.KILL if running.name in silent else StopMode.GRACEFUL
            await self._act(
                ClusterActivities.stop_node, StopInput(layout=layout, node=running.name, mode=mode)
            )
        stored: list[NodePosition] = await self._act(  # all stopped: exact positions now
            ClusterActivities.node_positions,
            PositionsInput(layout=layout, nodes=[n.name for n in layout.nodes]),
        )
        mine = next(p.position for p in stored if p.node == node)
        kept = []
        for other in stored:
            theirs = other.position
            ahead = theirs.uuid != mine.uuid or theirs.seqno > mine.seqno
            ahead = ahead or must_keep_aside(theirs) is not None  # unknown: kept all the same
            if other.node != node and not theirs.empty and ahead:
                where: str = await self._act(
                    ClusterActivities.set_aside_data, NodeInput(layout=layout, node=other.node)
                )
                kept.append(f"{other.node} (seqno {theirs.seqno}) kept at {where}")
        await self._start_cluster(layout, bootstrap_from=node)
        moved = f"; data of nodes ahead moved aside: {'; '.join(kept)}" if kept else ""
        return f"bootstrapped from {node} ({verdict}){moved}"

    def _pause(self, fault: Fault, reason: str) -> None:
        """Manual intervention: automation stops for this cluster; health reporting goes on."""
        self.memory.manual = ManualIntervention(
            since=workflow.now(), fault=fault.fault, reason=reason, evidence=fault.evidence
        )
        self._transition("cluster", "automatic", "ManualIntervention", reason)
        workflow.upsert_search_attributes([CLUSTER_STATE.value_set(MANUAL_INTERVENTION)])
        self._show_details()

    def _forget_attempts(self, node: str | None) -> None:
        """A node back to Green (or the whole cluster) clears its repair history."""
        suffix = f"/{node}" if node else ""
        for key in [k for k in self.memory.attempts if node is None or k.endswith(suffix)]:
            self.memory.attempts.pop(key, None)
            self.memory.retry_after.pop(key, None)

    @workflow.update(name=UPDATE_FORCE_ACTION)
    def force_action(self, request: ForceActionRequest) -> CommandResult:
        self.memory.task_counter += 1
        forced = " (forced past the safety checks)" if request.force else ""
        record = RemediationRecord(
            id=f"force-{self.memory.task_counter}",
            fault=FaultClass.OPERATOR_REQUEST,
            nodes=[request.node],
            evidence=f"requested by an operator{forced}: {request.reason}",
            attempt=1,
            started_at=workflow.now(),
        )
        self._queue_record("force", record, f"{request.action.value}: {request.reason}", request)
        return CommandResult(accepted=True, task_id=record.id, message=f"queued as {record.id}")

    @force_action.validator
    def _validate_force_action(self, request: ForceActionRequest) -> None:
        self._refuse_when_ending()
        if self.memory.phase != Phase.RUNNING.value:
            raise ValueError(f"the cluster is {self.memory.phase}: start it first")
        found = refusal(request, self.memory.nodes, self.memory.primary)
        if found is not None and not (found.overridable and request.force):
            hint = " (add force to carry it out anyway)" if found.overridable else ""
            raise ValueError(f"{found.reason}{hint}")

    @workflow.update(name=UPDATE_RESUME)
    def resume(self, request: ResumeRequest) -> CommandResult:
        paused = self.memory.manual
        assert paused is not None
        self.memory.manual = None
        self.memory.resumed_from = paused.evidence
        self._forget_attempts(None)
        self._transition("cluster", "ManualIntervention", "automatic", request.reason)
        workflow.upsert_search_attributes([CLUSTER_STATE.value_set(self.memory.cluster_state)])
        self.decide = True
        self._show_details()
        return CommandResult(accepted=True, message=f"automation resumed after {paused.fault}")

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        if self.memory.manual is None:
            raise ValueError("automation is not paused: nothing to resume")


def _committed(node: NodeMemory) -> NodePosition:
    """A running node's position: its last committed seqno as the probe saw it."""
    seqno = node.facts.seqno if node.facts.seqno is not None else -1
    return NodePosition(node=node.name, position=GaleraPosition(seqno=seqno))


def _attempt_key(fault: Fault) -> str:
    """Attempts count per fault class and node ("*" for the whole cluster)."""
    nodes = fault.nodes if len(fault.nodes) == 1 else ("*",)
    return f"{fault.fault.value}/{nodes[0]}"
