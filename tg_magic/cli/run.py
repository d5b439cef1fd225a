"""`tg-magic run`: execute a notebook headless in a kernel of this environment; the magics see
the output file as their notebook, so %tgaccept writes into it."""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..text import first_line, one_line
from . import EXIT_FAILED, engine_for, fail

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
    return first_line(source, 70) or "(empty)"


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
                error = (
                    f"cell {index + 1} ({_first_line(cell.source)}) failed: {one_line(what, 200)}"
                )
                break
            except CellTimeoutError:
                error = f"cell {index + 1} ({_first_line(cell.source)}) timed out"
                break
            except DeadKernelError:
                kernel_log.seek(0)
                last = [line for line in kernel_log.read().splitlines() if line.strip()][-1:]
                error = f"the kernel died in cell {index + 1} ({_first_line(cell.source)})" + (
                    f": {one_line(last[0], 150)}" if last else ""
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
    from ..notebook.history import History, history_path

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

    from ..nbfile import save_notebook

    source = Path(args.notebook).expanduser()
    if not source.is_file():
        return fail("run", f"notebook {args.notebook} not found: give the path of an .ipynb file")
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as exc:
        return fail("run", f"{source} is not a readable notebook: {one_line(str(exc), 150)}")
    output = Path(args.output).expanduser() if args.output else source.with_suffix(".run.ipynb")
    if output.suffix != ".ipynb":
        return fail("run", f"--output {args.output}: the output must be an .ipynb file")
    if args.timeout is not None and args.timeout <= 0:
        return fail("run", "--timeout must be a positive number of seconds")
    if args.engine:
        engine_for(args.engine)  # a wrong spec or a missing key fails here, in one line
        os.environ["TG_MAGIC_ENGINE"] = args.engine
    from ..config import RUN_UNSANDBOXED_ENV, settings

    if settings.allow_unsandboxed and not args.allow_unsandboxed:
        print(
            "tg-magic run: TG_MAGIC_ALLOW_UNSANDBOXED is ignored here: the notebook's tests run "
            "unsandboxed only with tg-magic run --allow-unsandboxed",
            file=sys.stderr,
        )
    # The kernel reads this once, from the environment it starts with; no cell can change it.
    os.environ[RUN_UNSANDBOXED_ENV] = "1" if args.allow_unsandboxed else "0"
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
        # the settings are read before the first cell (where /proc/self/environ is missing)
        extra_arguments=["--IPKernelApp.code_to_run=__import__('tg_magic.config') and None"],
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
        return fail("run", result.error, EXIT_FAILED)
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


HELP = "execute a notebook headless (its %%tgaccept cells write into the output)"
DESCRIPTION = (
    "Execute a notebook with a kernel of this environment. The magics see the "
    "output file as their notebook, so %tgaccept writes accepted values into it. "
    "Cells run in the input notebook's folder; %%tgloss --data paths are read beside the "
    "output, so keep --output in that folder when a notebook reads data files."
)


def arguments(p: Any) -> None:
    p.add_argument("notebook", help="the .ipynb to run")
    p.add_argument(
        "--output",
        help="where to write the executed notebook "
        "(default: NOTEBOOK.run.ipynb beside it; may be NOTEBOOK itself)",
    )
    p.add_argument("--engine", help="engine for every magic (TG_MAGIC_ENGINE)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell (default: none)")
    p.add_argument(
        "--allow-unsandboxed",
        action="store_true",
        help="where bubblewrap is missing, run the notebook's tests without it (only for a "
        "notebook you trust; the notebook itself cannot turn this on)",
    )
    p.set_defaults(func=cmd_run)
