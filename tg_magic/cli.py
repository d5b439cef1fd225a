"""The `tg-magic` command: a demo optimization, headless notebook runs, and class feedback.

    tg-magic demo [--engine E] [--steps N]
    tg-magic run NOTEBOOK [--output FILE] [--engine E] [--timeout S]
    tg-magic feedback SUBMISSION... --target NAME (--tests FILE | --rubric FILE) --out DIR

The command line is a face of its own, beside the notebook magics: it parses arguments, calls
the library (or runs a notebook kernel), and prints what came back. No prompt is written here.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import difflib
import json
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .errors import InputError, TgMagicError, redact

EXIT_INPUT = 2  # bad command-line input
EXIT_FAILED = 1  # the run itself failed (a cell raised, a model call failed)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, one line each otherwise."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.width = 24

    def update(self, done: int, note: str = "") -> None:
        filled = self.width * done // self.total if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        text = f"{self.label} [{bar}] {done}/{self.total}" + (f"  {note}" if note else "")
        if self.live:
            self.stream.write("\r" + text[:150].ljust(150) + ("\n" if done >= self.total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _fail(command: str, message: str, code: int = EXIT_INPUT) -> int:
    print(f"tg-magic {command}: {redact(message)}", file=sys.stderr)
    return code


def _engine(spec: str | None) -> Any:
    """The engine for --engine (checked now, so a bad spec is a one-line input error)."""
    from .engines import get_engine

    return get_engine(spec) if spec else None


# =========================================================================== demo

NOUNS = {
    "fruits": ["apple", "banana", "plum", "pear", "orange", "grape", "nectarine"],
    "musical instruments": ["violin", "flute", "drum", "trumpet", "piano", "clarinet"],
    "objects": ["chair", "table", "lamp", "oven", "bed", "stove", "microwave"],
    "animals": ["cat", "dog", "rabbit", "goat", "snail", "donkey", "frog"],
}
NUMBER_WORDS = ["one", "two", "three", "four", "five"]


def counting_question(rng: random.Random) -> tuple[str, str]:
    """'I have a violin, two drums and a flute. How many musical instruments do I have?' -> 4"""
    kind = rng.choice(sorted(NOUNS))
    items = rng.sample(NOUNS[kind], rng.randint(2, 4))
    counts = [rng.randint(1, 3) for _ in items]
    parts = [
        f"{'an' if item[0] in 'aeiou' else 'a'} {item}"
        if c == 1
        else f"{NUMBER_WORDS[c - 1]} {item}s"
        for item, c in zip(items, counts, strict=True)
    ]
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return f"I have {listed}. How many {kind} do I have?", str(sum(counts))


DEMO_PROMPT = "Answer the question."


def _short(text: str, width: int = 88) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def cmd_demo(args: argparse.Namespace) -> int:
    import tg_magic as tg
    from tg_magic.data import METRICS

    if args.steps < 1 or args.questions < 1:
        return _fail("demo", "--steps must be at least 1")
    engine = _engine(args.engine) or tg.get_engine(None)
    tg.set_backward_engine(engine)
    rng = random.Random(args.seed)
    data = [counting_question(rng) for _ in range(args.questions)]
    prompt = tg.Variable(
        DEMO_PROMPT,
        role_description="system prompt of a model that answers counting questions",
        requires_grad=True,
    )
    model = tg.BlackboxLLM(engine, prompt)
    number = METRICS["number"]

    def correct(prediction: tg.Variable, answer: tg.Variable) -> tuple[str, float]:
        ok = number(prediction.value, answer.value)
        return ("correct" if ok else f"wrong: the answer is {answer.value}"), float(ok)

    metric = tg.StringBasedFunction(
        correct, "1 if the last number in the prediction equals the correct answer, else 0"
    )
    optimizer = tg.TGD([prompt], constraints=_prompt_constraints())

    def forward() -> tuple[tg.Variable, list[tg.Variable]]:
        verdicts, predictions = [], []
        for question, answer in data:
            q = tg.Variable(question, role_description="question", requires_grad=False)
            a = tg.Variable(answer, role_description="correct answer", requires_grad=False)
            prediction = model(q, "answer to the question")
            predictions.append(prediction)
            verdicts.append(metric({"prediction": prediction, "answer": a}))
        return tg.sum(verdicts), predictions

    print(f"tg-magic demo: optimize a system prompt for counting questions on {engine.spec}")
    print(f"{len(data)} questions, metric: the last number in the answer equals the count")
    print(f"system prompt: {prompt.value!r}\n")
    start = time.perf_counter()
    first = prompt.value
    score_before = None
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        with tg.track_usage() as used:
            loss, predictions = forward()
            score = loss.score
        score_before = score if score_before is None else score_before
        print(f"step {step}/{args.steps}  forward: score {score:.2f}  [{used.usage}]")
        for (question, answer), prediction in zip(data, predictions, strict=True):
            mark = "ok " if number(prediction.value, answer) else "no "
            print(f"  {mark} {_short(question, 60)} -> {_short(prediction.value, 40)!r}")
        with tg.track_usage() as used:
            loss.backward()
        print(
            f"step {step}/{args.steps}  backward: {len(prompt.gradients)} gradients  [{used.usage}]"
        )
        if prompt.gradients:
            print(f"  e.g. {_short(prompt.gradients[0].text, 160)}")
        failed = len(optimizer.failures)
        with tg.track_usage() as used, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said below, in one line
            optimizer.step()
        if len(optimizer.failures) > failed:
            print(f"step {step}/{args.steps}  update: no usable reply  [{used.usage}]")
            print(f"  {optimizer.failures[-1].reason}")
            if engine.small:
                print("  (a model this small often fails here: see the README)")
        else:
            print(f"step {step}/{args.steps}  update: new system prompt  [{used.usage}]")
        print(f"  {prompt.value!r}\n")
    with tg.track_usage() as used:
        final, _ = forward()
        after = final.score
    print(f"after {args.steps} step(s): score {score_before:.2f} -> {after:.2f}  [{used.usage}]")
    diff = difflib.unified_diff(
        first.splitlines(),
        prompt.value.splitlines(),
        "system prompt (before)",
        "system prompt (after)",
        lineterm="",
    )
    print("\n".join(diff) or "(the system prompt did not change)")
    print(f"\ntotal: {tg.usage()}, {time.perf_counter() - start:.0f} s")
    return 0


def _prompt_constraints() -> list[str]:
    from .prompts import DEMO_CONSTRAINTS

    return list(DEMO_CONSTRAINTS)


# =========================================================================== run

USAGE_EXPRESSION = (
    "__import__('json').dumps(__import__('dataclasses').asdict(__import__('tg_magic').usage()))"
)


@dataclass
class _Executed:
    cells: int
    seconds: float
    usage: dict[str, Any] | None
    error: str = ""


def _first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip()]
    return _short(lines[0], 70) if lines else "(empty)"


async def _execute(client: Any, nb: Any, progress: Callable[[int, Any], None]) -> _Executed:
    """Every cell in order in one kernel, then ask the kernel what the model calls used."""
    start = time.perf_counter()
    client.reset_execution_trackers()
    # The kernel's own log lines (not the cells' output) go to a file, shown if it dies.
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as kernel_log:
        executed, usage, error = await _cells(client, nb, progress, kernel_log)
    return _Executed(executed, time.perf_counter() - start, usage, error)


async def _cells(
    client: Any, nb: Any, progress: Callable[[int, Any], None], kernel_log: TextIO
) -> tuple[int, dict[str, Any] | None, str]:
    from jupyter_core.utils import ensure_async
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    executed = 0
    usage = None
    error = ""
    async with client.async_setup_kernel(stderr=kernel_log):
        info = await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
        if info is not None and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            progress(index, cell)
            try:
                await client.async_execute_cell(
                    cell, index, execution_count=client.code_cells_executed + 1
                )
            except CellExecutionError as exc:
                what = f"{exc.ename}: {exc.evalue}" if exc.ename else str(exc).splitlines()[-1]
                error = f"cell {index + 1} ({_first_line(cell.source)}) failed: {_short(what, 200)}"
                break
            except CellTimeoutError:
                error = f"cell {index + 1} ({_first_line(cell.source)}) timed out"
                break
            except DeadKernelError:
                kernel_log.seek(0)
                last = [line for line in kernel_log.read().splitlines() if line.strip()][-1:]
                error = f"the kernel died in cell {index + 1} ({_first_line(cell.source)})" + (
                    f": {_short(last[0], 150)}" if last else ""
                )
                break
            executed += 1
        client.set_widgets_metadata()
        if not error:
            usage = await _kernel_usage(client)
    return executed, usage, error


async def _kernel_usage(client: Any) -> dict[str, Any] | None:
    """tg_magic.usage() of the kernel, read without adding a cell or an output."""
    from jupyter_core.utils import ensure_async

    msg_id = await ensure_async(
        client.kc.execute(
            "", silent=True, store_history=False, user_expressions={"u": USAGE_EXPRESSION}
        )
    )
    reply = await client.async_wait_for_reply(msg_id)
    try:
        value = reply["content"]["user_expressions"]["u"]
        return dict(json.loads(ast.literal_eval(value["data"]["text/plain"])))
    except (KeyError, TypeError, ValueError, SyntaxError):
        return None


def _merge_accepted(executed: Any, on_disk: Path, started_with: list[str]) -> list[int]:
    """Put into the executed notebook the cells the kernel rewrote in the file (%tgaccept writes
    the .ipynb on disk while it runs); returns their indices."""
    import nbformat

    try:
        disk = nbformat.read(on_disk, as_version=4)
    except Exception:
        return []
    by_id = {c.get("id"): c for c in disk.cells if c.get("id")}
    changed = []
    for index, cell in enumerate(executed.cells):
        twin = by_id.get(cell.get("id")) if cell.get("id") else None
        if twin is None and len(disk.cells) == len(executed.cells):
            twin = disk.cells[index]
        if twin is None or index >= len(started_with):
            continue
        if twin.source != started_with[index] and twin.source != cell.source:
            cell.source = twin.source
            changed.append(index)
    return changed


def _history_lines(notebook: Path, since: float) -> list[str]:
    """What the optimization did, from the history the magics wrote beside the notebook."""
    from .notebook.history import History, history_path

    path = history_path(notebook)
    if not path.is_file():
        return []
    history = History(path)
    lines = []
    for name in history.variables():
        steps = [
            e
            for e in history.entries(name)
            if e.created >= since and e.status not in ("original", "edited")
        ]
        if not steps:
            continue
        kept = sum(1 for e in steps if e.kept)
        scores = ", ".join("–" if e.score is None else f"{e.score:.2f}" for e in steps)
        vals = [e.val_score for e in steps if e.val_score is not None]
        val = f"; validation after the last: {vals[-1]:.2f}" if vals else ""
        accepted = [e.n for e in steps if e.status == "accepted"]
        acc = f"; accepted iteration {accepted[-1]}" if accepted else "; none accepted"
        lines.append(
            f"  {name}: {len(steps)} candidate(s), {kept} kept; score before each step: "
            f"{scores}{val}{acc}"
        )
    return lines


def _usage_line(usage: dict[str, Any] | None) -> str:
    if usage is None:
        return "  usage: unknown (the kernel did not say)"
    cached = f" ({usage.get('cached_calls', 0)} from cache)" if usage.get("cached_calls") else ""
    return (
        f"  usage: {usage.get('calls', 0)} model calls{cached}, "
        f"{usage.get('input_tokens', 0):,} input + {usage.get('output_tokens', 0):,} output "
        f"tokens, ${usage.get('cost', 0.0):.4f}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    import nbformat
    from nbclient import NotebookClient

    from .nbfile import save_notebook

    source = Path(args.notebook).expanduser()
    if not source.is_file():
        return _fail("run", f"notebook {args.notebook} not found: give the path of an .ipynb file")
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as exc:
        return _fail("run", f"{source} is not a readable notebook: {_short(str(exc), 150)}")
    output = Path(args.output).expanduser() if args.output else source.with_suffix(".run.ipynb")
    if output.suffix != ".ipynb":
        return _fail("run", f"--output {args.output}: the output must be an .ipynb file")
    if args.timeout is not None and args.timeout <= 0:
        return _fail("run", "--timeout must be a positive number of seconds")
    if args.engine:
        _engine(args.engine)  # a wrong spec or a missing key fails here, in one line
        os.environ["TG_MAGIC_ENGINE"] = args.engine
    output.parent.mkdir(parents=True, exist_ok=True)
    if source.resolve() != output.resolve():
        shutil.copyfile(source, output)  # the magics write accepted cells into this file
    os.environ["TG_MAGIC_NOTEBOOK"] = str(output.resolve())
    started_with = [c.source for c in nb.cells]
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    client = NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name="python3",  # ipykernel of this environment
        resources={"metadata": {"path": str(source.parent.resolve())}},
    )
    seen = 0

    def progress(index: int, cell: Any) -> None:
        nonlocal seen
        seen += 1
        print(f"[{seen}/{code_cells}] {_first_line(cell.source)}", file=sys.stderr, flush=True)

    since = time.time()
    result = asyncio.run(_execute(client, nb, progress))
    rewritten = _merge_accepted(nb, output, started_with)
    save_notebook(nb, output)
    if result.error:
        print(f"(the notebook so far is in {output})", file=sys.stderr)
        return _fail("run", result.error, EXIT_FAILED)
    print(f"ran {result.cells} code cells in {result.seconds:.1f} s; wrote {output}")
    lines = _history_lines(output.resolve(), since)
    if not lines and result.usage and result.usage.get("calls"):
        lines = ["  no new candidate in the history (see the notebook's outputs)"]
    for line in lines:
        print(line)
    for index in rewritten:
        print(f"  cell {index + 1} rewritten by %tgaccept: {_first_line(nb.cells[index].source)}")
    print(_usage_line(result.usage))
    return 0


# =========================================================================== feedback


def cmd_feedback(args: argparse.Namespace) -> int:
    from . import classroom
    from .loss import TestLoss

    loss_file = Path(args.tests or args.rubric).expanduser()
    option = "--tests" if args.tests else "--rubric"
    if not loss_file.is_file():
        return _fail("feedback", f"{option} {loss_file}: file not found")
    text = loss_file.read_text(encoding="utf-8")
    if not text.strip():
        return _fail("feedback", f"{option} {loss_file} is empty")
    if args.tests:
        TestLoss(text)  # tests that do not parse: a one-line input error, before any notebook
    if args.jobs < 1:
        return _fail("feedback", "--jobs must be at least 1")
    files = classroom.find_submissions(args.submissions)
    if not files:
        return _fail("feedback", "no .ipynb files found in " + " ".join(args.submissions))
    out_dir = Path(args.out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        return _fail("feedback", f"--out {out_dir} is a file: give a folder")
    assignment = classroom.Assignment(
        args.target,
        "tests" if args.tests else "rubric",
        text,
        engine=_engine(args.engine),
        timeout=args.timeout,
    )
    bar = _Progress("feedback", len(files))
    bar.update(0)

    def done(result: classroom.Result, count: int, total: int) -> None:
        state = "done before" if result.skipped else ("ok" if result.ok else "error")
        bar.update(count, f"{result.student}: {state}")

    results = classroom.run(
        files, assignment, out_dir, jobs=args.jobs, force=args.force, on_done=done
    )
    classroom.write_csv(results, assignment.mode, out_dir / "summary.csv")
    classroom.write_html(results, assignment, out_dir / "summary.html")
    width = max(len(r.student) for r in results)
    for r in results:
        score = "  –  " if r.score is None else f"{r.score:.2f}"
        counts = f" ({r.passed}/{r.total} tests)" if r.total is not None else ""
        state = "" if r.ok else "  " + r.status
        again = "  (done before)" if r.skipped else ""
        print(f"{r.student:<{width}}  {score}{counts}{state}{again}")
    skipped = sum(1 for r in results if r.skipped)
    errors = sum(1 for r in results if not r.ok)
    print(
        f"{len(results)} notebooks ({skipped} done before, {errors} with errors): "
        f"{out_dir / 'summary.csv'}, {out_dir / 'summary.html'}"
    )
    return 0


# =========================================================================== main


def _parser() -> _Parser:
    parser = _Parser(
        prog="tg-magic",
        description="TextGrad in Jupyter: a demo, headless notebook runs, class feedback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="run a small prompt optimization end to end",
        description="Optimize a system prompt for counting questions: forward, loss, "
        "gradients, step, and the diff. No API key: the embedded local model.",
    )
    demo.add_argument(
        "--engine",
        help="e.g. anthropic:claude-haiku-5-5 or local (default: "
        "Claude if ANTHROPIC_API_KEY is set, else local)",
    )
    demo.add_argument("--steps", type=int, default=1, help="optimizer steps (default 1)")
    demo.add_argument("--questions", type=int, default=3, help=argparse.SUPPRESS)
    demo.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run",
        help="execute a notebook headless (its %%tgaccept cells write into the output)",
        description="Execute a notebook with a kernel of this environment. The magics see the "
        "output file as their notebook, so %tgaccept writes accepted values into it. "
        "Cells run in the input notebook's folder; %%tgloss --data paths are read beside the "
        "output, so keep --output in that folder when a notebook reads data files.",
    )
    run.add_argument("notebook", help="the .ipynb to run")
    run.add_argument(
        "--output",
        help="where to write the executed notebook "
        "(default: NOTEBOOK.run.ipynb beside it; may be NOTEBOOK itself)",
    )
    run.add_argument("--engine", help="engine for every magic (TG_MAGIC_ENGINE)")
    run.add_argument("--timeout", type=float, default=None, help="seconds per cell (default: none)")
    run.set_defaults(func=cmd_run)

    fb = sub.add_parser(
        "feedback",
        help="score submitted notebooks and write a hint into each",
        description="For each notebook: find the answer cell, run the teacher's tests (or a "
        "judge with the rubric), write a copy with a feedback cell (score and a hint that "
        "points at the problem without the solution), and a summary table.",
    )
    fb.add_argument("submissions", nargs="+", metavar="SUBMISSION", help=".ipynb files or folders")
    fb.add_argument(
        "--target",
        required=True,
        metavar="NAME",
        help="the answer cell: %%%%tgvariable NAME, or a cell tagged NAME",
    )
    loss = fb.add_mutually_exclusive_group(required=True)
    loss.add_argument("--tests", metavar="FILE", help="Python tests (asserts or test_* functions)")
    loss.add_argument("--rubric", metavar="FILE", help="a rubric in words, for an LLM judge")
    fb.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    fb.add_argument(
        "--engine", help="engine for hints and the judge (default: Claude with a key, else local)"
    )
    fb.add_argument("--jobs", type=int, default=4, help="notebooks at once (default 4)")
    fb.add_argument("--timeout", type=float, default=20.0, help="seconds per test run")
    fb.add_argument("--force", action="store_true", help="redo notebooks finished before")
    fb.set_defaults(func=cmd_feedback)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as exc:
        return _fail(args.command, str(exc))
    except TgMagicError as exc:  # no engine, a failed model call, the budget...
        return _fail(args.command, str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        print(f"tg-magic {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
