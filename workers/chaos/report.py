"""A chaos run in words: one row per fault, every state transfer a node received during it
(victims and the others), the count of full copies (SSTs), the end checks."""

from dataclasses import dataclass

from workers.chaos.faults import FaultResult
from workers.chaos.runner import ChaosRun, seconds
from workers.chaos.verify import Verdict


def fault_lines(results: list[FaultResult]) -> list[str]:
    lines = [
        f"{'#':>2}  {'fault':<16}  {'victims':<24}  {'detected s':>10}  {'out of LB s':>11}  "
        f"{'Green again s':>13}  {'write errors':>12}  {'longest stall s':>15}  repairs"
    ]
    for r in results:
        green = "MANUAL" if r.manual else seconds(r.green) if r.green is not None else "TIMEOUT"
        victims = ",".join(r.victims) + (" (writer)" if r.writer in r.victims else "")
        lines.append(
            f"{r.number:>2}  {r.kind:<16}  {victims:<24}  {seconds(r.detected):>10}  "
            f"{seconds(r.out_of_lb):>11}  {green:>13}  {r.errors:>12}  {r.stall:>15.1f}  "
            f"{' '.join(r.repairs) or '-'}"
        )
        if r.healed is not None:
            lines.append(f"    healed after {r.healed:.1f} s")
        for join in r.rejoins:
            purpose = " (on purpose)" if join.on_purpose else ""
            lines.append(
                f"    {join.node} rejoined by {join.method or '-'}{purpose}: {join.detail}"
            )
        if r.manual:
            lines.append(f"    manual intervention: {r.manual}")
        if r.note:
            lines.append(f"    {r.note}")
    return lines


@dataclass(frozen=True)
class Transfers:
    """State transfers received during the faults, by every node."""

    ist: int
    sst: int
    sst_on_purpose: int  # SSTs a repair asked for (it had moved the node's data aside)

    @property
    def sst_unasked(self) -> int:
        return self.sst - self.sst_on_purpose


def transfers(results: list[FaultResult]) -> Transfers:
    joins = [j for r in results for j in r.rejoins]
    return Transfers(
        ist=sum(1 for j in joins if j.method == "IST"),
        sst=sum(1 for j in joins if j.method == "SST"),
        sst_on_purpose=sum(1 for j in joins if j.method == "SST" and j.on_purpose),
    )


def transfer_line(results: list[FaultResult]) -> str:
    counted = transfers(results)
    return (
        f"SSTs: {counted.sst} (on purpose: {counted.sst_on_purpose}); "
        f"ISTs: {counted.ist}, over {len(results)} faults"
    )


def check_lines(verdict: Verdict) -> list[str]:
    per_node = ", ".join(f"{n} {c}" for n, c in verdict.lost_per_node.items())
    sums = ", ".join(f"{n} {c}" for n, c in verdict.checksums.items())
    lines = [
        f"acknowledged rows:      {verdict.acked}",
        f"rows lost:              {verdict.lost} (must be 0; per node: {per_node})",
        f"identical checksums:    {'yes' if verdict.checksums_identical else 'NO'} ({sums})",
        f"final state:            {verdict.final_state}",
        f"manual intervention:    {verdict.manual or 'none'}",
        f"data set aside:         {', '.join(verdict.set_aside) or 'none'}",
    ]
    lines += [f"problem: {problem}" for problem in verdict.problems]
    return lines


def render(chaos: ChaosRun) -> str:
    lines = [
        f"chaos run {chaos.run_id} on {chaos.options.namespace}/{chaos.options.name}, "
        f"seed {chaos.options.seed}",
        "",
        *fault_lines(chaos.results),
        "",
        transfer_line(chaos.results),
    ]
    if chaos.verdict is not None:
        lines += check_lines(chaos.verdict)
    if not chaos.passed:
        lines.append(f"the writer's table {chaos.table} is kept for inspection")
    lines.append("PASS" if chaos.passed else "FAIL")
    return "\n".join(lines)
