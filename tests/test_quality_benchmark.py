"""benchmarks/quality.py: its tasks' data and scoring, its JSON, and the held-out split kept apart
(on the fake Messages API); one short run on the keyless local model."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from benchmarks import quality
from benchmarks.quality_tasks import code_bugs, counting, refine
from tests.fake_api import FakeMessagesAPI
from tg_magic.sandbox import run_tests

ENGINE = "anthropic:claude-haiku-5-5"


def recount(question: str) -> int:
    """Count the asked category's items of a counting question independently of the generator."""
    items, asked = re.fullmatch(r"I have (.*)\. How many (.*) do I have\?", question).groups()
    names = {one: 1 for one, _ in counting.CATEGORIES[asked]}
    names.update({many: 1 for _, many in counting.CATEGORIES[asked]})
    total = 0
    for part in re.split(r", and |, ", items):
        count, _, noun = part.partition(" ")
        if noun in names:
            total += 1 if count in ("a", "an") else counting.WORDS.index(count)
    return total


def test_counting_splits_are_the_papers_sizes_disjoint_seeded_and_right() -> None:
    data = counting.splits(seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (50, 100, 100)
    questions = [e.input for e in data.train + data.val + data.test]
    assert len(set(questions)) == 250
    assert counting.splits(seed=3) == data and counting.splits(seed=4) != data
    for example in data.train + data.test:
        assert int(example.target) == recount(example.input)
    assert len({e.input.rsplit("How many ", 1)[1] for e in data.test}) == 5  # every category


def test_counting_scores_the_last_number() -> None:
    assert counting.correct("two flutes and a piano: 3", "3")
    assert counting.correct("Let me count: 1, 2, 3, 4.\nThe answer is 4", "4")
    assert not counting.correct("It is 3, no, 4", "3")
    assert not counting.correct("three", "3")


def test_each_buggy_function_fails_its_tests_for_real() -> None:
    assert len(code_bugs.TASKS) >= 15
    assert len({t.name for t in code_bugs.TASKS}) == len(code_bugs.TASKS)
    for task in code_bugs.TASKS:
        assert run_tests(task.code, task.tests).score < 1.0, task.name
        assert task.hidden.strip() not in task.tests


def test_refine_problems_are_seeded_and_their_answers_right() -> None:
    problems = refine.problems(10, seed=1)
    assert problems == refine.problems(10, seed=1) != refine.problems(10, seed=2)
    muffins = problems[0].input
    a, b, c = map(int, re.findall(r"\d+", muffins))
    assert int(problems[0].target) == a * b - c
    assert refine.correct("5 * 12 = 60, 60 - 7 = 53. The answer is 53.", "53")


def test_counting_run_writes_figures_and_never_shows_the_test_split_to_the_optimizer(
    fake_api: FakeMessagesAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.json"
    argv = ["--engine", ENGINE, "--tasks", "counting", "--iterations", "2", "--limit", "6"]
    assert quality.main([*argv, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (result,) = report["results"]
    assert result["task"] == "counting" and result["sizes"] == [6, 6, 6]
    assert 0.0 <= result["test_before"] <= 1.0 and 0.0 <= result["test_after"] <= 1.0
    assert result["calls"] > 0 and result["input_tokens"] > 0 and result["dollars"] > 0
    assert [s["step"] for s in result["steps"]] == [1, 2]
    printed = capsys.readouterr().out
    assert "counting (TGD): test accuracy" in printed and "held-out" in printed

    data = counting.splits(0, (6, 6, 6))
    learning = [r for r in fake_api.requests if "feedback" in json.dumps(r["body"]).lower()]
    assert learning, "the optimization made gradient and update requests"
    for request in learning:
        body = json.dumps(request["body"])
        for example in data.test + data.val:
            assert json.dumps(example.input)[1:-1] not in body


def test_comparison_gives_tgd_the_same_budget_of_calls(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    out = tmp_path / "q.json"
    argv = ["--engine", ENGINE, "--tasks", "counting", "--iterations", "1", "--limit", "3"]
    assert quality.main([*argv, "--compare", "--json", str(out)]) == 0
    search, tgd = json.loads(out.read_text())["results"]
    assert (search["candidates"], tgd["candidates"]) == (3, 1)
    assert tgd["calls"] >= search["calls"]
    assert len(tgd["steps"]) > len(search["steps"])


def test_code_and_refine_runs_report_fixes_and_accuracy(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    out = tmp_path / "q.json"
    argv = ["--engine", ENGINE, "--tasks", "code,refine", "--limit", "2"]
    assert quality.main([*argv, "--json", str(out)]) == 0
    code, solved = json.loads(out.read_text())["results"]
    assert code["functions"] == 2 and [r["name"] for r in code["results"]] == ["median", "mean"]
    for row in code["results"]:
        assert row["before"] < 1.0 and 0 <= row["steps"] <= quality.CODE_STEPS
        assert row["fixed"] == (row["after"] == 1.0)
    assert solved["problems"] == 2 and len(solved["rows"]) == 2
    assert all(isinstance(r["before"], bool) for r in solved["rows"])


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="the local extra is not installed"
)
def test_keyless_model_on_one_buggy_function_never_ends_worse(tmp_path: Path) -> None:
    """What the 135M model reliably does: the validation gate keeps the code's test score from
    dropping, and the run reports its real calls and tokens."""
    out = tmp_path / "q.json"
    argv = ["--engine", "local", "--tasks", "code", "--limit", "1", "--json", str(out)]
    assert quality.main(argv) == 0
    (code,) = json.loads(out.read_text())["results"]
    (row,) = code["results"]
    assert row["name"] == "median" and row["after"] >= row["before"]
    assert code["calls"] >= 2 and code["output_tokens"] > 0 and code["dollars"] == 0
