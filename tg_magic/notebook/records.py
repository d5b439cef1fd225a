"""How the steps of `%tgoptimize` are stored in the history, as soon as each step ends.

A plain TGD step stores its proposal ("candidate" when kept, "rejected" when the validation gate
undid it). A k-candidate step stores all k, each with its own validation score: the others as
"alternative", the kept one as "candidate", last, so that it is the variable's latest candidate.
Any of them can be accepted by its number (`%tgaccept VAR N`, or the candidate table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..candidates import Candidate

if TYPE_CHECKING:
    from ..train import StepResult
    from .history import History
    from .session import CellVariable


@dataclass(frozen=True)
class StepCandidate:
    """One candidate of a k-candidate step, as stored: its iteration number in the history,
    the value it was proposed against, how it was made and how it scored."""

    n: int
    before: str
    candidate: Candidate


def _store(
    history: History,
    cell: CellVariable,
    value: str,
    gradients: list[str],
    result: StepResult,
    val_score: float | None,
    kept: bool,
    status: str,
) -> int:
    """One stored iteration of a step; the step's usage goes with the value it kept."""
    return history.add(
        cell.name,
        value,
        cell_id=cell.cell.cell_id,
        gradients=gradients,
        score=result.score,
        val_score=val_score,
        kept=kept,
        status=status,
        usage=str(result.usage) if kept or status == "rejected" else "",
        step=result.step,
    )


def proposals(history: History, params: list[CellVariable], result: StepResult) -> None:
    """A plain TGD step: each changed value, kept or rejected by the validation gate."""
    by_var = {id(p.variable): p for p in params}
    for proposal in result.proposals:
        if proposal.after != proposal.before:
            status = "candidate" if proposal.kept else "rejected"
            cell = by_var[id(proposal.variable)]
            _store(
                history,
                cell,
                proposal.after,
                proposal.gradients,
                result,
                result.val_after,
                proposal.kept,
                status,
            )


def candidates(
    history: History, params: list[CellVariable], result: StepResult
) -> dict[str, list[StepCandidate]]:
    """A k-candidate step: every candidate's changed values; returns, per variable, what was
    stored (in iteration order), for the candidate table."""
    ordered = [c for c in result.candidates if not c.chosen]
    ordered += [c for c in result.candidates if c.chosen]
    stored: dict[str, list[StepCandidate]] = {p.name: [] for p in params}
    for candidate in ordered:
        status = "candidate" if candidate.chosen else "alternative"
        for cell, proposal, value in zip(params, result.proposals, candidate.values, strict=True):
            if value != proposal.before:
                n = _store(
                    history,
                    cell,
                    value,
                    proposal.gradients,
                    result,
                    candidate.score,
                    candidate.chosen,
                    status,
                )
                stored[cell.name].append(StepCandidate(n, proposal.before, candidate))
    return stored
