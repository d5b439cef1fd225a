"""Loss cells: what a `%%tgloss` cell says, checked when it runs. A loss trains the variables
it names (`--target a,b`), or, with `--program FUNC`, every variable the program's graph
reaches, found by running the program on the first example."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import objectives, programs
from ..errors import InputError
from ..objectives import LossSpec
from .names import check_name

if TYPE_CHECKING:
    from .session import Session


@dataclass
class LossCell:
    name: str
    targets: list[str]  # the variables it trains (a program's: found by running it)
    cell_id: str
    spec: LossSpec
    program: str = ""  # --program FUNC: the function's name in the kernel
    note: str = ""  # what defining it found out besides (a program's cut chain, its inputs)

    @property
    def mode(self) -> str:
        return self.spec.kind

    @property
    def body(self) -> str:
        return self.spec.body

    @property
    def examples(self) -> list[Any]:
        return self.spec.examples


def define(
    session: Session,
    name: str,
    body: str,
    *,
    cell_id: str,
    target: str | None,
    mode: str,
    data: str | None = None,
    metric: Any = "exact",
    model: str | None = None,
    program: str | None = None,
) -> LossCell:
    """A loss cell: `target` names the variable(s) it trains ("a,b" for several code cells
    under one tests cell); a `program` loss finds its variables by running the program on
    the first example."""
    check_name(name)
    if name in session.variables:
        raise InputError(f"{name} is already a variable: give the loss another name")
    path = Path(data).expanduser() if data else None
    if path is not None and not path.is_absolute() and session.notebook is not None:
        path = session.notebook.parent / path
    spec = LossSpec(mode, body, data=path, metric=metric, model=model)
    if program:
        if target:
            raise InputError(
                f"--program {program} finds the variables it trains itself: drop --target"
            )
        loss = LossCell(name, [], cell_id, spec, program=program)
        objectives.check(spec, name=name, targets={})
        loss.targets, loss.note = reached(session, loss)
    else:
        targets = [t.strip() for t in (target or "").split(",") if t.strip()]
        if not targets:
            raise InputError(f"the loss {name} has no target: add --target VARIABLE")
        twice = next((t for t in targets if targets.count(t) > 1), None)
        if twice:
            raise InputError(f"--target names {twice} twice: name each variable once")
        for t in targets:
            if t in session.losses:
                raise InputError(
                    f"the target {t} is a loss: --target must name a %%tgvariable cell"
                )
        kinds = {t: session.variable(t).kind for t in targets}
        objectives.check(spec, name=name, targets=kinds)
        loss = LossCell(name, targets, cell_id, spec)
    _one_loss_each(session, loss)
    session.losses[name] = loss
    session.reports.forget(name)
    return loss


def reached(session: Session, loss: LossCell) -> tuple[list[str], str]:
    """Run the program on the first example: the variables it trains, and a note on those
    it only uses (--no-grad) or reads as plain text, which cuts the chain."""
    func = program_of(session, loss)
    by_id = {id(c.variable): c.name for c in session.variables.values()}
    known = [c.variable for c in session.variables.values()]
    reach = programs.reach(func, [e.input for e in loss.examples], known)
    trains = [by_id[id(v)] for v in reach.trains]
    uses = [by_id[id(v)] for v in reach.uses]
    cut = [by_id[id(v)] for v in reach.cut]
    fn = loss.program
    if cut:
        message = (
            f"{fn} cuts the chain at {', '.join(cut)}: it read the text of a model answer "
            f"(.value, str() or an f-string) and passed on plain text; keep the link with "
            f"tg.Variable(text, predecessors=[answer], role_description=...) or a "
            f"tg.FormattedLLMCall"
        )
        if not trains:
            raise InputError(message)
    if not trains:
        names = ", ".join(sorted(session.variables)) or "none yet"
        if uses:
            raise InputError(
                f"{fn} uses only --no-grad variables ({', '.join(uses)}): nothing to train"
            )
        raise InputError(
            f"{fn} uses none of the variables (known: {names}): call a model on one of "
            f"them, e.g. tg.llm(NAME, x), and return its answer"
        )
    notes = [f"uses {', '.join(uses)} (--no-grad)"] if uses else []
    return trains, "; ".join(notes + ([message] if cut else []))


def program_of(session: Session, loss: LossCell) -> Any:
    """The loss's program as the kernel defines it now (a redefined function is used)."""
    func = session.namespace.get(loss.program)
    if func is None:
        raise InputError(
            f"--program {loss.program} is not defined: run the cell that defines "
            f"def {loss.program}(x): ... first"
        )
    loss.spec.program = programs.check_program(func, loss.program)
    return func


def _one_loss_each(session: Session, loss: LossCell) -> None:
    """A program's variables are trained by that loss alone: two losses pulling one prompt
    in different directions, each with its own validation gate, is not a graph."""
    for other in session.losses.values():
        if other.name == loss.name or not (other.program or loss.program):
            continue
        shared = [t for t in loss.targets if t in other.targets]
        if shared:
            raise InputError(
                f"{shared[0]} is already trained by the loss {other.name}: a variable "
                f"belongs to one loss when a program trains it (rename one, or redefine "
                f"{other.name})"
            )
