"""Hints for a class: how many leaks the two layers catch, how many fair hints they keep, and how
long 100 students asking at once wait, against the bound set by the provider's concurrency.

1. The labelled set (tests/data/hints/): the syntactic layer alone, then both layers with a
   scripted model on the loopback fake Messages API.
2. A real `tg-magic serve` process, 100 students with their own tokens posting a free-text answer
   at the same moment; the fake API answers every call after LATENCY seconds. Each hint is three
   model calls in a row (the judge, the gradient, the leak check), so the bound is
   3 x 100 x LATENCY / CONCURRENCY (one at a time it would be 3 x 100 x LATENCY).

    python benchmarks/hints.py [--students 100] [--latency 0.5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import hintset  # noqa: E402
from tests.fake_api import FakeMessagesAPI  # noqa: E402

CALLS_PER_HINT = 3  # rubric: judge, gradient, leak check


def leak_figures(fake: FakeMessagesAPI) -> None:
    syntactic = hintset.measure(hintset.syntactic_layer, "syntactic")
    print(syntactic.line("syntactic layer alone (code-form leaks)"))
    everything = hintset.measure(hintset.syntactic_layer)
    print(everything.line("syntactic layer alone (all leaks, prose recipes too)"))
    fake.add_rule("write the answer without thinking", hintset.scripted_check)
    os.environ["ANTHROPIC_BASE_URL"] = fake.base_url
    os.environ["ANTHROPIC_API_KEY"] = "benchmark-key"
    os.environ["TG_MAGIC_CACHE"] = "off"
    both = hintset.measure(hintset.both_layers("anthropic:claude-haiku-5-5"))
    print(both.line("both layers, scripted model"))
    met = max(syntactic.leaks, both.leaks) <= 1 and max(syntactic.damaged, both.damaged) <= 2
    print(f"bound: at most 1 leak, at most 2 fair hints damaged: {'met' if met else 'NOT met'}")


def class_of(root: Path, students: int, concurrency: int) -> tuple[Path, dict[str, str]]:
    folder = root / "class"
    (folder / "assignments" / "essay").mkdir(parents=True)
    (folder / "assignments" / "essay" / "rubric.md").write_text(
        "- names the financial cause\n- gives the year 1789\n"
    )
    (folder / "class.toml").write_text(
        f'engine = "anthropic:claude-haiku-5-5"\nconcurrency = {concurrency}\n'
        "hints_per_hour = 1000\nhints_per_assignment = 1000\n"
    )
    roster = root / "roster.csv"
    roster.write_text("login\n" + "".join(f"s{i:03d}\n" for i in range(students)))
    made = subprocess.run(
        [sys.executable, "-m", "tg_magic.cli", "tokens", "--class", str(folder), "--students",
         str(roster)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return folder, {r["login"]: r["token"] for r in csv.DictReader(made.stdout.splitlines())}


def class_wall_time(fake: FakeMessagesAPI, students: int, latency: float, concurrency: int) -> None:
    fake.reset()
    fake.add_rule("Score: N/10", "It names the cause but not the date.\nScore: 6/10")
    fake.add_rule("is learning", "The answer does not say when the events took place.")
    fake.add_rule("write the answer without thinking", "VERDICT: KEEP")
    with tempfile.TemporaryDirectory() as tmp:
        folder, tokens = class_of(Path(tmp), students, concurrency)
        env = {**os.environ, "ANTHROPIC_BASE_URL": fake.base_url, "PYTHONPATH": str(ROOT)}
        env["ANTHROPIC_API_KEY"] = "benchmark-key"
        service = subprocess.Popen(
            [sys.executable, "-m", "tg_magic.cli", "serve", "--class", str(folder), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert service.stdout is not None
            line = service.stdout.readline()
            url = line.split("listening on ", 1)[1].split()[0]
            fake.latency = latency
            start = threading.Barrier(students + 1)
            statuses: list[int] = []

            def ask(login: str, token: str) -> None:
                answer = f"The revolution began because the king was bankrupt ({login})."
                body = json.dumps({"variable": "essay", "code": answer}).encode()
                request = urllib.request.Request(
                    url + "hint", data=body, headers={"Authorization": f"Bearer {token}"}
                )
                start.wait()
                with urllib.request.urlopen(request, timeout=600) as reply:
                    statuses.append(reply.status)

            threads = [threading.Thread(target=ask, args=item) for item in tokens.items()]
            for t in threads:
                t.start()
            start.wait()
            began = time.perf_counter()
            for t in threads:
                t.join()
            wall = time.perf_counter() - began
        finally:
            service.terminate()
            service.communicate(timeout=30)
    bound = CALLS_PER_HINT * students * latency / concurrency
    serial = CALLS_PER_HINT * students * latency
    print(
        f"{students} students at once, {latency:.2f} s per model call, concurrency "
        f"{concurrency}: {wall:.1f} s wall ({statuses.count(200)}/{students} hints); bound "
        f"{CALLS_PER_HINT} x {students} x {latency} / {concurrency} = {bound:.1f} s "
        f"(ratio {wall / bound:.2f}); one at a time would take {serial:.0f} s; "
        f"peak calls in flight at the fake API: {fake.max_concurrency}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with FakeMessagesAPI() as fake:
        leak_figures(fake)
        class_wall_time(fake, args.students, args.latency, args.concurrency)


if __name__ == "__main__":
    main()
