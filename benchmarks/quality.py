"""Does optimization make things better? The TextGrad paper's protocol on tasks built here.

    python benchmarks/quality.py [--engine SPEC] [--tasks counting,code,refine]
        [--iterations 12] [--limit N] [--candidates K] [--compare] [--seed 0] [--json FILE]
        [--batch]

(a) counting: prompt optimization on object counting in BIG-Bench Hard's form (train/val/test
    50/100/100, batch 3, validation-gated steps, 12 iterations); test accuracy before and after,
    the test split never seen by the optimization.
(b) code: each of 18 buggy functions optimized against its tests (TestLoss + optimize, as the
    `%%tgvariable`/`%%tgloss --tests` cells do), at most 3 steps; tests fixed, hidden tests too.
(c) refine: answers to word problems refined by TGD with an LLM judge that does not know the
    result; accuracy of the final numbers before and after.

--compare runs (a) and (b) with plain TGD and with k candidates per step on the same budget of
calls. The engine is Claude when ANTHROPIC_API_KEY is set, else the keyless local model;
--engine chooses any. The reply cache is off, so calls, tokens and time are real; the engines
decode greedily, so two runs give the same figures. --batch sends Claude's calls as Message
Batches: the dollars are the batch rate's (half), the seconds a batch's wait.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quality_tasks import code_bugs, counting, refine
from tg_magic import runtime
from tg_magic.autograd import forward
from tg_magic.candidates import python_prefix
from tg_magic.config import set_backward_engine
from tg_magic.data import Example
from tg_magic.engines import DEFAULT_ANTHROPIC_MODEL, METER, Engine, batches, get_engine, set_cache
from tg_magic.functions import BlackboxLLM
from tg_magic.loss import MetricLoss, TestLoss, TextLoss
from tg_magic.prompts import KIND_CONSTRAINTS
from tg_magic.sandbox import run_tests
from tg_magic.train import Objective, StepResult, optimize
from tg_magic.variable import Variable

CODE_STEPS = 3
REFINE_STEPS = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Run:
    """Usage and wall time of one block of work."""

    def __enter__(self) -> Run:
        self._scope = METER.scope()
        self.scope = self._scope.__enter__()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self._scope.__exit__(None, None, None)

    @property
    def calls(self) -> int:
        return self.scope.usage.calls

    def figures(self) -> dict[str, Any]:
        u = self.scope.usage
        return {
            "calls": u.calls,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "dollars": round(u.cost, 6),
            "seconds": round(time.perf_counter() - self.start, 1),
        }


def steps_within(
    results: Iterator[StepResult], run: Run, call_budget: int | None
) -> Iterator[StepResult]:
    """The optimizer's steps, stopping after the one that reaches the budget of calls."""
    for result in results:
        yield result
        if call_budget is not None and run.calls >= call_budget:
            return


# ------------------------------------------------------------------------------ (a) counting
def answers_correct(engine: Engine, prompt: str, examples: list[Example]) -> list[float]:
    """1.0 per example the model answers right with this system prompt (all calls at once)."""
    model = BlackboxLLM(
        engine, Variable(prompt, role_description="system prompt", requires_grad=False)
    )
    predictions = [
        model(Variable(e.input, role_description="question", requires_grad=False), "answer")
        for e in examples
    ]
    runtime.run(forward(predictions))
    return [
        float(counting.correct(p.value, e.target))
        for p, e in zip(predictions, examples, strict=True)
    ]


def run_counting(
    engine: Engine, args: argparse.Namespace, k: int, call_budget: int | None = None
) -> dict[str, Any]:
    sizes = tuple(min(n, args.limit) if args.limit else n for n in counting.SPLIT)
    data = counting.splits(args.seed, sizes)  # type: ignore[arg-type]
    prompt = Variable(
        counting.START_PROMPT,
        role_description="system prompt of a model answering counting questions",
    )
    loss = MetricLoss(prompt, "number", engine=engine)
    objective = Objective(
        lambda batch: loss(batch),
        data.train,
        validate=lambda: sum(answers_correct(engine, prompt.value, data.val)) / len(data.val),
        validate_each=lambda values: answers_correct(engine, values[0], data.val),
    )
    before = sum(answers_correct(engine, prompt.value, data.test)) / len(data.test)
    iterations = args.iterations if call_budget is None else args.iterations * max(k, 4)
    steps = []
    with Run() as run:
        results = optimize(
            [prompt],
            objective,
            steps=iterations,
            batch_size=3,
            seed=args.seed,
            candidates=k,
            engine=engine,
            constraints=KIND_CONSTRAINTS["prompt"],
        )
        for r in steps_within(results, run, call_budget):
            steps.append(
                {
                    "step": r.step,
                    "val_before": r.val_before,
                    "val_after": r.val_after,
                    "kept": r.kept,
                    "candidates": len(r.candidates),
                }
            )
            log(
                f"  counting k={k} step {r.step}: val {r.val_before} -> {r.val_after}"
                f" ({'kept' if r.kept else 'undone'}), {run.calls} calls"
            )
        figures = run.figures()
    after = sum(answers_correct(engine, prompt.value, data.test)) / len(data.test)
    return {
        "task": "counting",
        "candidates": k,
        "sizes": sizes,
        "test_before": before,
        "test_after": after,
        "prompt": prompt.value,
        "steps": steps,
        **figures,
    }


# ---------------------------------------------------------------------------------- (b) code
def test_scores(tests: TestLoss, code: str) -> list[float]:
    """1.0 per passing test of `code` (a crash or hang: one 0)."""
    report = TestLoss.report(tests(Variable(code, role_description="code", requires_grad=False)))
    return [float(o.passed) for o in report.outcomes] or [0.0]


def fix_one(
    engine: Engine, task: code_bugs.BuggyFunction, k: int, seed: int, call_budget: int | None
) -> dict[str, Any]:
    code = Variable(task.code, role_description=f"Python code defining {task.name}")
    tests = TestLoss(task.tests)
    objective: Objective[Any] = Objective(
        lambda _: tests(code),
        validate=lambda: tests(code).score,
        validate_each=lambda values: test_scores(tests, values[0]),
    )
    before = tests(code).score or 0.0
    steps = CODE_STEPS if call_budget is None else CODE_STEPS * max(k, 4)
    used = 0
    with Run() as run:
        if before < 1.0:
            results = optimize(
                [code],
                objective,
                steps=steps,
                seed=seed,
                candidates=k,
                engine=engine,
                constraints=KIND_CONSTRAINTS["code"],
                tidy=python_prefix,
            )
            for r in steps_within(results, run, call_budget):
                used = r.step
                if r.val_after == 1.0:
                    break
        figures = run.figures()
    after = tests(code).score or 0.0
    hidden = run_tests(code.value, task.hidden).score
    return {
        "name": task.name,
        "bug": task.bug,
        "before": before,
        "after": after,
        "fixed": after == 1.0 and before < 1.0,
        "hidden_passes": hidden == 1.0,
        "steps": used,
        "code": code.value,
        **figures,
    }


def run_code(
    engine: Engine, args: argparse.Namespace, k: int, budgets: list[int] | None = None
) -> dict[str, Any]:
    tasks = code_bugs.TASKS[: args.limit] if args.limit else code_bugs.TASKS
    results = []
    with Run() as run:
        for i, task in enumerate(tasks):
            result = fix_one(engine, task, k, args.seed, budgets[i] if budgets else None)
            log(
                f"  code k={k} {task.name}: {result['before']:.2f} -> {result['after']:.2f}"
                f" (hidden {'ok' if result['hidden_passes'] else 'fails'}), {result['calls']} calls"
            )
            results.append(result)
        figures = run.figures()
    return {
        "task": "code",
        "candidates": k,
        "functions": len(results),
        "fixed": sum(r["fixed"] for r in results),
        "hidden_passes": sum(r["hidden_passes"] for r in results),
        "results": results,
        **figures,
    }


# -------------------------------------------------------------------------------- (c) refine
def run_refine(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    problems = refine.problems(args.limit or 10, args.seed)
    rows = []
    with Run() as run:
        for problem in problems:
            first = engine.generate(problem.input, refine.ANSWER_SYSTEM, max_tokens=300)
            answer = Variable(first, role_description=f"answer to the problem: {problem.input}")
            judge = TextLoss(f"{refine.JUDGE}\n\nThe problem: {problem.input}", engine=engine)
            for _ in optimize(
                [answer],
                Objective(lambda _, judge=judge, answer=answer: judge(answer)),
                steps=REFINE_STEPS,
                engine=engine,
            ):
                pass
            rows.append(
                {
                    "problem": problem.input,
                    "target": problem.target,
                    "before": refine.correct(first, problem.target),
                    "after": refine.correct(answer.value, problem.target),
                }
            )
        figures = run.figures()
    n = len(rows)
    return {
        "task": "refine",
        "problems": n,
        "accuracy_before": sum(r["before"] for r in rows) / n,
        "accuracy_after": sum(r["after"] for r in rows) / n,
        "rows": rows,
        **figures,
    }


# ------------------------------------------------------------------------------------ report
def cost(r: dict[str, Any]) -> str:
    return (
        f"{r['calls']} calls, {r['input_tokens']:,}+{r['output_tokens']:,} tokens, "
        f"${r['dollars']:.4f}, {r['seconds']:.0f} s"
    )


def summary(r: dict[str, Any]) -> str:
    label = "TGD" if r.get("candidates", 1) == 1 else f"k={r['candidates']} candidates"
    if r["task"] == "counting":
        return (
            f"counting ({label}): test accuracy {r['test_before']:.2f} -> {r['test_after']:.2f}"
            f" on {r['sizes'][2]} held-out questions; {cost(r)}"
        )
    if r["task"] == "code":
        return (
            f"code ({label}): {r['fixed']}/{r['functions']} functions fixed, hidden tests "
            f"pass for {r['hidden_passes']}; {cost(r)}"
        )
    return (
        f"refine: accuracy {r['accuracy_before']:.2f} -> {r['accuracy_after']:.2f} on "
        f"{r['problems']} problems; {cost(r)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", help="engine spec (default: Claude with a key, else local)")
    parser.add_argument("--tasks", default="counting,code,refine")
    parser.add_argument("--iterations", type=int, default=12, help="counting steps (12)")
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="cap each split, the functions and the problems (0: no cap)",
    )
    parser.add_argument("--candidates", type=int, default=1, help="k per step (1: plain TGD)")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="TGD and --candidates K (default 3) on the same budget of calls",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="quality-results.json", help="where to write figures")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="send the calls as Message Batches (half the price; the batches are recorded "
        "beside --json, so a run started again reads their answers instead of paying twice)",
    )
    args = parser.parse_args(argv)
    spec = args.engine or (
        f"anthropic:{DEFAULT_ANTHROPIC_MODEL}" if os.environ.get("ANTHROPIC_API_KEY") else "local"
    )
    engine = get_engine(spec)
    set_backward_engine(engine)
    set_cache(None)  # every call is made, so the figures are real
    batching = args.batch and batches.start(
        Path(args.json).with_suffix(".batches.json"),
        engine,
        lambda status: log(f"  batch {status.id}: {status}"),
    )
    warnings.simplefilter("ignore")  # unusable optimizer replies are counted, not printed
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    k = args.candidates if args.candidates > 1 or not args.compare else 3
    results: list[dict[str, Any]] = []
    for task in tasks:
        log(f"{task} on {spec}...")
        if task == "counting":
            first = run_counting(engine, args, k)
            results.append(first)
            if args.compare:
                results.append(run_counting(engine, args, 1, call_budget=first["calls"]))
        elif task == "code":
            first = run_code(engine, args, k)
            results.append(first)
            if args.compare:
                budgets = [r["calls"] for r in first["results"]]
                results.append(run_code(engine, args, 1, budgets))
        elif task == "refine":
            results.append(run_refine(engine, args))
        else:
            parser.error(f"unknown task {task!r}: use counting, code, refine")
    print(
        f"quality on {spec} ({platform.machine()}, {os.cpu_count()} cores"
        f"{', --limit ' + str(args.limit) if args.limit else ''}):"
    )
    for r in results:
        print("  " + summary(r))
    Path(args.json).write_text(
        json.dumps(
            {
                "engine": spec,
                "seed": args.seed,
                "limit": args.limit,
                "batch": batching,
                "results": results,
            },
            indent=1,
        )
    )
    if batching:
        print(batches.summary())
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
