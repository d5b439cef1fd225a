"""The `tg-magic` command: a demo optimization, headless notebook runs, and class feedback.

    tg-magic demo [--engine E] [--steps N]
    tg-magic run NOTEBOOK [--output FILE] [--engine E] [--timeout S]
    tg-magic feedback SUBMISSION... --target NAME (--tests FILE | --rubric FILE) --out DIR
    tg-magic serve --class DIR [--port P]
    tg-magic tokens --class DIR --students roster.csv [--teacher] [--expires DATE]

The command line is a face of its own, beside the notebook magics: it parses arguments, calls
the library (or runs a notebook kernel), and prints what came back. No prompt is written here.
One module per command (`demo`, `run`, `feedback`, `serve`, `tokens`), each with its `HELP`,
`DESCRIPTION` and `arguments(parser)`; this module holds what they share: the parser class, the
exit codes, one-line failures, `main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ..errors import InputError, TgMagicError, redact

EXIT_INPUT = 2  # bad command-line input
EXIT_FAILED = 1  # the run itself failed (a cell raised, a model call failed)


class CommandLineParser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def fail(command: str, message: str, code: int = EXIT_INPUT) -> int:
    """Print `tg-magic COMMAND: message` (redacted) on stderr; return the exit status."""
    print(f"tg-magic {command}: {redact(message)}", file=sys.stderr)
    return code


def engine_for(spec: str | None) -> Any:
    """The engine for --engine (checked now, so a bad spec is a one-line input error)."""
    from ..engines import get_engine

    return get_engine(spec) if spec else None


def build_parser() -> CommandLineParser:
    from . import demo, feedback, run, serve, tokens

    parser = CommandLineParser(
        prog="tg-magic",
        description="TextGrad in Jupyter: a demo, headless notebook runs, class feedback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandLineParser)
    sub.required = True
    for command in (demo, run, feedback, serve, tokens):
        name = command.__name__.rsplit(".", 1)[1]
        command.arguments(sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as exc:
        return fail(args.command, str(exc))
    except TgMagicError as exc:  # no engine, a failed model call, the budget...
        return fail(args.command, str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        print(f"tg-magic {args.command}: interrupted", file=sys.stderr)
        return 130
