"""The kernel-side state of a notebook: which cells are variables and losses, their graph, and
their history. It turns cells into library objects; all prompts and optimization logic stay in
the library (tg_magic.loss, tg_magic.optim, tg_magic.train)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import objectives
from ..candidates import python_prefix
from ..config import settings
from ..errors import InputError
from ..functions import sum as tg_sum
from ..hints import filter_hint
from ..optim import TGD
from ..train import Objective, StepResult, optimize
from ..variable import Gradient, Variable
from . import loss_cells, records, where
from .cellwriter import CellRef, Transport
from .edits import CellEdits, Ran, Waiting, same
from .history import Entry, History, history_path
from .loss_cells import LossCell
from .names import check_name
from .records import StepCandidate
from .scores import Stopper, TestReports
from .where import Frontend

if TYPE_CHECKING:
    from ..sandbox import TestReport

KINDS = ("prompt", "code", "text")
DEFAULT_ROLE = {"prompt": "system prompt", "code": "Python code", "text": "text"}


@dataclass
class CellVariable:
    name: str
    kind: str
    cell: CellRef
    variable: Variable
    cell_value: str  # what the cell holds now (the variable may hold a candidate)
    kernel_value: str = ""  # what the kernel ran (code) or bound (text) from the cell last
    previous_value: str = ""  # the cell before the last accept or revert (what it changed)
    last_action: str = ""  # the last accept, revert, reject or edit, in words
    waiting: Waiting | None = None  # accepted, not in the cell yet: it goes in when the cell runs
    ran: Ran | None = None  # what the cell's last run did with a waiting iteration


@dataclass
class Built:
    """A loss turned into library objects, ready to run."""

    parameters: list[CellVariable]
    objective: Objective[Any]


class Session:
    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace = namespace if namespace is not None else {}
        self.variables: dict[str, CellVariable] = {}
        self.losses: dict[str, LossCell] = {}
        self.notebook: Path | None = None
        self.frontend: Transport | None = None
        # What runs this kernel, asked at each accept (the magics set it; a script has none).
        self.where: Callable[[], Frontend] = lambda: where.current(None, self.namespace)
        self._history: History | None = None
        self.last_loss: Variable | None = None
        self.last_parameters: list[CellVariable] = []
        self.edits = CellEdits(self)
        self.reports = TestReports()
        self.stop_reason = ""  # why the last optimization stopped early ("" when it did not)
        # Each variable's candidates of the last k-candidate step (the candidate table).
        self.step_candidates: dict[str, list[StepCandidate]] = {}

    # -- where things are stored ----------------------------------------------------------
    def set_notebook(self, path: str | Path | None) -> None:
        self.notebook = Path(path).expanduser().resolve() if path else None
        self._history = None

    @property
    def history(self) -> History:
        if self._history is None:
            self._history = History(history_path(self.notebook))
        return self._history

    # -- cells ------------------------------------------------------------------------------
    def define_variable(
        self,
        name: str,
        body: str,
        *,
        cell_id: str,
        magic_line: str,
        kind: str = "prompt",
        role: str | None = None,
        requires_grad: bool = True,
    ) -> CellVariable:
        check_name(name)
        if kind not in KINDS:
            raise InputError(f"unknown --kind {kind!r}: use prompt, code or text")
        if name in self.losses:
            raise InputError(f"{name} is already a loss cell: give the variable another name")
        if not body.strip():
            raise InputError(
                f"the cell of {name} is empty: write its starting text under the magic"
            )
        body = body.strip("\n")  # the cell's text, without the blank lines around it
        ran = self.edits.cell_ran(name, body)
        body = ran.body if ran else body
        cell_id = cell_id or f"name:{name}"
        for other in [v for v in self.variables.values() if v.cell.cell_id == cell_id]:
            if other.name != name:  # the cell was renamed
                del self.variables[other.name]
        variable = Variable(
            body, role_description=role or DEFAULT_ROLE[kind], requires_grad=requires_grad
        )
        ref = CellRef(name, cell_id, magic_line)
        entry = CellVariable(name, kind, ref, variable, body, kernel_value=body)
        known = self.variables.get(name)
        if known is not None and known.cell.cell_id == cell_id:
            entry.previous_value, entry.last_action = known.previous_value, known.last_action
            if known.cell_value != body or known.kernel_value != body:
                entry.last_action = "the cell ran"
        if ran is not None:
            entry.ran = ran
            if ran.rewrite and ran.waiting is not None:
                entry.previous_value, entry.last_action = ran.waiting.cell_then, ran.waiting.verb
        self.variables[name] = entry
        entries = self.history.entries(name)
        if not any(same(e.value, body) for e in entries):
            self.history.add(
                name, body, cell_id=cell_id, status="edited" if entries else "original"
            )
        self.edits.changed(name)
        return entry

    def define_loss(self, name: str, body: str, **options: Any) -> LossCell:
        """A loss cell (see loss_cells.define for the options)."""
        return loss_cells.define(self, name, body, **options)

    def losses_of(self, name: str) -> list[LossCell]:
        """The losses that train variable `name`."""
        return [c for c in self.losses.values() if name in c.targets]

    def variable(self, name: str) -> CellVariable:
        if name not in self.variables:
            known = ", ".join(sorted(self.variables)) or "none yet"
            hint = " (it is a loss)" if name in self.losses else ""
            raise InputError(
                f"unknown variable {name}{hint}: run its %%tgvariable cell first (known: {known})"
            )
        return self.variables[name]

    def loss_cells(self, name: str | None) -> list[LossCell]:
        if name:
            if name not in self.losses:
                known = ", ".join(sorted(self.losses)) or "none yet"
                raise InputError(f"unknown loss {name}: run its %%tgloss cell first ({known})")
            return [self.losses[name]]
        if not self.losses:
            raise InputError("no loss defined: write a %%tgloss NAME --target VARIABLE cell")
        return list(self.losses.values())

    # -- turning cells into a graph ---------------------------------------------------------
    def build(
        self,
        name: str | None,
        *,
        val: str | None = None,
        val_frac: float | None = None,
        optimizing: bool = True,
    ) -> Built:
        """The graph of loss `name` (None: all); `optimizing=False` for a forward pass, which
        may also evaluate variables declared with --no-grad."""
        parts = [self.build_one(c, val, val_frac, optimizing) for c in self.loss_cells(name)]
        params: list[CellVariable] = []
        for built in parts:
            params += [p for p in built.parameters if p not in params]
        if len(parts) == 1:
            return Built(params, parts[0].objective)
        objectives = [b.objective for b in parts]

        def loss(batch: list[Any] | None) -> Variable:
            return tg_sum([o.loss(batch if o.train else None) for o in objectives])

        def validate() -> float | None:
            scores = [o.validate() for o in objectives if o.validate]
            numbers = [s for s in scores if s is not None]
            return sum(numbers) / len(numbers) if numbers else None

        train = next((o.train for o in objectives if o.train), None)
        return Built(params, Objective(loss, train, validate))

    def build_one(
        self, cell: LossCell, val: str | None, val_frac: float | None, optimizing: bool = True
    ) -> Built:
        if cell.program:  # the program as defined now: what it reaches now is what it trains
            cell.targets, cell.note = loss_cells.reached(self, cell)
        targets = [self.variable(t) for t in cell.targets]
        for target in targets:
            if optimizing and not target.variable.requires_grad:
                raise InputError(
                    f"{target.name} was declared with --no-grad: nothing to optimize for "
                    f"{cell.name}"
                )
        variables = [t.variable for t in targets]
        objective = objectives.build(cell.spec, variables, val=val, val_frac=val_frac)
        if cell.mode == "tests":
            spec = cell.spec
            objective = self.reports.keeping(
                cell.name,
                variables,
                objective,
                lambda codes: objectives.tests_on(spec, variables, codes),
            )
        return Built(targets, objective)

    def test_report(self, name: str, value: str) -> TestReport | None:
        """The report of the tests of variable `name` run on `value` in this kernel, if any: with
        the other cells of its loss as they are now, else the last run that had this value (an
        original with the others' originals, a candidate with the rest of its set)."""
        for loss in self.losses.values():
            if name in loss.targets and loss.mode == "tests":
                values = [
                    value if t == name else self.variable(t).variable.value for t in loss.targets
                ]
                found = self.reports.get(loss.name, values) or self.reports.latest_with(
                    loss.name, loss.targets.index(name), value
                )
                if found is not None:
                    return found
        return None

    # -- running ----------------------------------------------------------------------------
    def optimize(
        self,
        name: str | None,
        *,
        steps: int = 3,
        batch: int = 4,
        val: str | None = None,
        val_frac: float | None = None,
        patience: int | None = None,
        target: float | None = None,
        candidates: int = 1,
    ) -> Iterator[StepResult]:
        """Steps of TGD (with `candidates` > 1: k proposals a step, the best on validation
        kept); every candidate is stored in the history as soon as it exists. The run
        ends early at the `target` score or after `patience` steps without a better score
        (`stop_reason` says which). Bad input is reported here, before the first step."""
        if patience is not None and patience < 1:
            raise InputError("--patience must be at least 1 step")
        if candidates < 1:
            raise InputError("--candidates must be at least 1")
        built = self.build(name, val=val, val_frac=val_frac)
        self.last_parameters = built.parameters
        stopper = Stopper(patience=patience, target=target)
        self.stop_reason = ""

        def steps_then_reason() -> Iterator[StepResult]:
            yield from stopper.follow(self._steps(built, steps, batch, candidates))
            self.stop_reason = stopper.reason

        return steps_then_reason()

    def _steps(self, built: Built, steps: int, batch: int, k: int) -> Iterator[StepResult]:
        params = built.parameters
        # k candidates of code are cut out of chatty replies before the tests judge them;
        # plain TGD (k = 1) keeps the reply as the model wrote it.
        tidy = python_prefix if k > 1 and all(p.kind == "code" for p in params) else None
        for result in optimize(
            [p.variable for p in params],
            built.objective,
            steps=steps,
            batch_size=batch,
            candidates=k,
            tidy=tidy,
            constraints=_constraints(params),
        ):
            if result.candidates:
                shown = records.candidates(self.history, params, result)
                self.step_candidates.update(shown)
            else:
                records.proposals(self.history, params, result)
            yield result

    def forward(self, name: str | None) -> Variable:
        built = self.build(name, optimizing=False)
        loss = built.objective.loss(list(built.objective.train or []) or None)
        self.last_loss, self.last_parameters = loss, built.parameters
        loss.value  # noqa: B018 - runs the graph
        return loss

    def backward(self, name: str | None) -> list[CellVariable]:
        built = self.build(name)
        for p in built.parameters:
            p.variable.gradients = []
        loss = built.objective.loss(list(built.objective.train or []) or None)
        loss.backward(hint=settings.feedback_only)
        self.last_loss, self.last_parameters = loss, built.parameters
        if settings.feedback_only:
            for p in built.parameters:
                self._as_hints(p)
        return built.parameters

    # -- feedback-only mode -----------------------------------------------------------------
    def hint(self, name: str) -> tuple[list[str], float | None]:
        """Feedback-only mode: the variable's gradient as hints (computed now, from the losses
        that evaluate it, when it has none yet), filtered so that no solution shows; and the
        score of those losses when there is one."""
        cell = self.variable(name)
        cells = self.losses_of(name)
        if not cells:
            raise InputError(
                f"no loss evaluates {name}: write a %%tgloss LOSS --target {name} cell "
                "(tests or an instruction) and run it first"
            )
        if not cell.variable.gradients:
            built = [self.build_one(c, None, None).objective for c in cells]
            cell.variable.gradients = []
            losses = [o.loss(list(o.train or []) or None) for o in built]
            loss = losses[0] if len(losses) == 1 else tg_sum(losses)
            loss.backward(hint=True)
            self.last_loss, self.last_parameters = loss, [cell]
        self._as_hints(cell)
        scored = self.last_loss is not None and cell in self.last_parameters
        score = self.last_loss.score if scored and self.last_loss is not None else None
        return [g.text for g in cell.variable.gradients], score

    def _as_hints(self, cell: CellVariable) -> None:
        """Replace the variable's gradients by their filtered versions (what a learner sees)."""
        keep = [c.body for c in self.losses_of(cell.name)]
        keep += [g.context.get("output", "") for g in cell.variable.gradients]
        cell.variable.gradients = [
            Gradient(filter_hint(g.text, cell.variable.value, keep), g.context)
            for g in cell.variable.gradients
        ]

    def step(self) -> list[tuple[CellVariable, str, str]]:
        """One TGD step from the last backward; returns (variable, before, after)."""
        params = [p for p in self.last_parameters if p.variable.gradients]
        if not params:
            raise InputError("no gradients yet: run %tgbackward first")
        before = [p.variable.value for p in params]
        optimizer = TGD(
            [p.variable for p in params],
            constraints=_constraints(params),
        )
        optimizer.step()
        changes = []
        for p, old in zip(params, before, strict=True):
            new = p.variable.value
            if new != old:
                self.history.add(
                    p.name,
                    new,
                    cell_id=p.cell.cell_id,
                    gradients=[g.text for g in p.variable.gradients],
                    score=self.last_loss.score if self.last_loss else None,
                )
            changes.append((p, old, new))
        return changes

    # -- accept and revert (the edits themselves: edits.py) ----------------------------------
    def entry(self, name: str, n: int | None, *, default: str) -> Entry:
        entries = self.history.entries(name)
        if not entries:
            raise InputError(f"{name} has no history yet: run %tgoptimize or %tgstep")
        if n is None:
            if default == "latest":
                pick = [e for e in entries if e.status in ("candidate", "accepted")] or entries
            else:  # the original, as the user first wrote it
                pick = entries[:1]
            return pick[-1]
        found = [e for e in entries if e.n == n]
        if not found:
            raise InputError(f"{name} has no iteration {n}: see %tghistory {name}")
        return found[0]


def _constraints(params: list[CellVariable]) -> list[str]:
    return objectives.constraints({p.kind for p in params})
