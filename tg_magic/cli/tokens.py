"""`tg-magic tokens --class DIR --students roster.csv`: a token per student to hand out; the
class folder keeps only their hashes (tokens.json)."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

from . import fail


def cmd_tokens(args: argparse.Namespace) -> int:
    from ..classroom.auth import issue_tokens
    from ..classroom.results import write_atomic

    folder = Path(args.class_dir).expanduser()
    if not folder.is_dir():
        return fail("tokens", f"--class {folder}: no such folder")
    if not args.students and not args.teacher:
        return fail("tokens", "give --students roster.csv, --teacher, or both")
    roster = Path(args.students).expanduser() if args.students else None
    issued = issue_tokens(folder / "tokens.json", roster, args.expires or "", teacher=args.teacher)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["login", "name", "token", "expires"])
    writer.writerows([i.login, i.name, i.token, i.expires] for i in issued)
    if args.out:
        out = Path(args.out).expanduser()
        write_atomic(out, buffer.getvalue())
        out.chmod(0o600)
        print(f"{len(issued)} tokens written to {out} (hand each student their line)")
    else:
        sys.stdout.write(buffer.getvalue())
    print(
        f"{folder / 'tokens.json'} keeps their hashes only; a new run replaces a student's token",
        file=sys.stderr,
    )
    return 0


HELP = "make the students' (and the teacher's) tokens for tg-magic serve"
DESCRIPTION = (
    "A token per student of the roster (a CSV with a login column, optional "
    "name and expires columns). Only hashes are stored in the class folder; the tokens "
    "are printed (or written to --out) for you to hand out."
)


def arguments(p: Any) -> None:
    p.add_argument("--class", dest="class_dir", required=True, metavar="DIR", help="class folder")
    p.add_argument("--students", metavar="CSV", help="the roster")
    p.add_argument("--teacher", action="store_true", help="also a new token for /teacher")
    p.add_argument("--expires", metavar="YYYY-MM-DD", help="expiry for rows without one")
    p.add_argument("--out", metavar="FILE", help="write the tokens here instead of stdout")
    p.set_defaults(func=cmd_tokens)
