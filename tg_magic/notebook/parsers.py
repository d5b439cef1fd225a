"""The magics' declared arguments: one parser a magic, errors as one line, --help answered.

Kept apart from magics.py (as jupyter-ai keeps its parsers.py) so that what a magic accepts is
read in one place. IPython's `magic_arguments` keeps quotes inside values and has no --help, so
the line is split with shlex and parsed by argparse.
"""

from __future__ import annotations

import argparse
import shlex
from typing import NoReturn

from IPython.core.error import UsageError


class HelpAnswered(Exception):
    """--help was answered: the magic does nothing more."""


class MagicArgumentParser(argparse.ArgumentParser):
    """argparse that reports errors as one line and answers --help without exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip())
        raise HelpAnswered


def split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot read the arguments ({exc}): check the quotes") from None


def parse(parser: MagicArgumentParser, line: str) -> argparse.Namespace:
    return parser.parse_args(split(line))


def _parser(prog: str, description: str) -> MagicArgumentParser:
    return MagicArgumentParser(prog=prog, description=description, add_help=True)


def variable() -> MagicArgumentParser:
    p = _parser("%%tgvariable", "Register this cell as a variable of the graph.")
    p.add_argument("name")
    p.add_argument("--role", default=None, help="what the text is, e.g. 'system prompt'")
    p.add_argument("--kind", default="prompt", choices=["prompt", "code", "text"])
    p.add_argument("--no-grad", action="store_true", help="use it, but never change it")
    return p


def loss() -> MagicArgumentParser:
    p = _parser("%%tgloss", "Register this cell as a loss: what 'better' means.")
    p.add_argument("name")
    p.add_argument(
        "--target", help="the variable this loss evaluates (a,b: several code cells for --tests)"
    )
    # Each flag names a loss kind of tg_magic.objectives.KINDS (a new kind: one line here).
    mode = p.add_mutually_exclusive_group()
    for flag, help_text in (
        ("tests", "the body is Python tests"),
        ("judge", "the body instructs an LLM judge"),
    ):
        mode.add_argument(
            f"--{flag}", dest="kind", action="store_const", const=flag, help=help_text
        )
    mode.add_argument("--data", help="a JSONL/CSV file with input and target columns")
    p.set_defaults(kind="judge")
    p.add_argument("--metric", default="exact", help="exact | number | contains | python:FUNC")
    p.add_argument("--model", default=None, help="the forward model for --data")
    p.add_argument(
        "--program",
        metavar="FUNC",
        help="with --data: FUNC(input) -> answer calls models on the variables; all it reaches "
        "are trained",
    )
    return p


def optimize() -> MagicArgumentParser:
    p = _parser("%tgoptimize", "Mini-batch textual gradient descent with a validation gate.")
    p.add_argument("loss", nargs="?", help="the loss to minimise (default: all)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument(
        "--candidates",
        type=int,
        default=1,
        metavar="K",
        help="propose K values a step and keep the best on validation (default 1: plain TGD)",
    )
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val", help="validation data file (JSONL/CSV)")
    val.add_argument("--val-frac", type=float, help="hold out this fraction for validation")
    p.add_argument("--engine", help="forward engine for this run")
    p.add_argument("--backward-engine", help="gradient and step engine for this run")
    p.add_argument("--patience", type=int, help="stop after N steps without a better score")
    p.add_argument("--target-score", type=float, help="stop once the score reaches S")
    return p


def loss_name(prog: str, description: str) -> MagicArgumentParser:
    """%tgforward and %tgbackward: an optional loss name."""
    p = _parser(prog, description)
    p.add_argument("loss", nargs="?")
    return p


def no_arguments(prog: str, description: str) -> MagicArgumentParser:
    return _parser(prog, description)


def variable_name(prog: str, description: str) -> MagicArgumentParser:
    p = _parser(prog, description)
    p.add_argument("name")
    return p


def iteration(prog: str, description: str) -> MagicArgumentParser:
    """%tgrevert: a variable and an optional iteration number."""
    p = variable_name(prog, description)
    p.add_argument("n", nargs="?", type=int)
    return p


def accept() -> MagicArgumentParser:
    """%tgaccept VAR [N], or --all: every variable whose latest candidate is not in its cell."""
    p = _parser("%tgaccept", "Write a candidate into its cell and run it.")
    p.add_argument("name", nargs="?")
    p.add_argument("n", nargs="?", type=int)
    p.add_argument("--all", action="store_true", help="accept every changed variable")
    return p


def config() -> MagicArgumentParser:
    p = _parser("%tgconfig", "Show or change settings (also: %config TgMagics.NAME = ...).")
    p.add_argument("--engine")
    p.add_argument("--backward-engine")
    p.add_argument("--concurrency", type=int, help="model calls in flight at once to start with")
    p.add_argument("--max-concurrency", type=int, help="the most calls in flight as the pace grows")
    p.add_argument("--request-timeout", type=float, help="seconds per model request")
    p.add_argument("--idle-timeout", type=float, help="seconds a streamed reply may send nothing")
    p.add_argument("--run-deadline", type=float, help="seconds one forward/backward/step may take")
    p.add_argument("--budget-dollars", type=float)
    p.add_argument("--budget-tokens", type=int)
    p.add_argument("--cache")
    p.add_argument("--notebook")
    p.add_argument("--feedback-only", choices=["on", "off"])
    p.add_argument(
        "--allow-unsandboxed",
        choices=["on", "off"],
        help="run code under test without the sandbox where bubblewrap is missing",
    )
    return p
