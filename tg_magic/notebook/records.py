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


def proposals(history: History, params: list[CellVariable], result: StepResult) -> None:
    """A plain TGD step: each changed value, kept or rejected by the validation gate."""
    by_var = {id(p.variable): p for p in params}
    for proposal in result.proposals:
        cell = by_var[id(proposal.variable)]
        if proposal.after != proposal.before:
            history.add(
                cell.name,
                proposal.after,
                cell_id=cell.cell.cell_id,
                gradients=proposal.gradients,
                score=result.score,
                val_score=result.val_after,
                kept=proposal.kept,
                status="candidate" if proposal.kept else "rejected",
                usage=str(result.usage),
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
        for cell, proposal, value in zip(params, result.proposals, candidate.values, strict=True):
            if value == proposal.before:
                continue
            n = history.add(
                cell.name,
                value,
                cell_id=cell.cell.cell_id,
                gradients=proposal.gradients,
                score=result.score,
                val_score=candidate.score,
                kept=candidate.chosen,
                status="candidate" if candidate.chosen else "alternative",
                usage=str(result.usage) if candidate.chosen else "",
            )
            stored[cell.name].append(StepCandidate(n, proposal.before, candidate))
    return stored
