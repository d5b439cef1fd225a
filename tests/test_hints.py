"""Hints without solutions: what a learner sees of a textual gradient in feedback-only mode."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import tg_magic as tg
from tests import hintset
from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI
from tests.test_cli import run_cli
from tg_magic import prompts
from tg_magic.classroom.hinting import WITHHELD
from tg_magic.hints import REMOVED_NOTE, filter_hint, hint_markdown, looks_like_code
from tg_magic.loss import TestLoss

STUDENT = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
EXPLANATION = "The function subtracts where the task asks for a sum, so add(1, 2) gives -1."
QUESTION = "Which operator combines two numbers into their total?"

# A gradient that ignores the hint rule: the fix, in every form a model writes it.
LEAKY = f"""{EXPLANATION}
{QUESTION}

Here is the corrected version:

```python
def add(a, b):
    return a + b
```

Or write it in one line: def add(a, b): return a + b
You only need to change the line to `return a + b`, that is, return a + b instead.

    def add(a, b):
        return a + b

def add(a, b):
    total = a + b
    return total
<IMPROVED_VARIABLE>def add(a, b): return b + a</IMPROVED_VARIABLE>
"""


def visible_code(text: str) -> list[str]:
    """Fragments of the fix a learner could copy."""
    return [s for s in ("a + b", "b + a", "total =", "return total") if s in text]


def test_the_fix_is_removed_in_every_form_and_the_explanation_stays() -> None:
    hint = filter_hint(LEAKY, STUDENT, [TESTS])
    assert visible_code(hint) == []
    assert EXPLANATION in hint
    assert QUESTION in hint
    assert REMOVED_NOTE in hint
    assert "corrected version:" not in hint  # the line announcing the code went with it
    assert "```" not in hint


def test_pointing_at_the_students_own_code_and_the_tests_is_kept() -> None:
    text = (
        "In `return a - b` the operator is the wrong one: `add(1, 2) == 3` fails. "
        "Look at the `add` function again and read the `AssertionError`."
    )
    assert filter_hint(text, STUDENT, [TESTS]) == text


def test_a_hint_without_code_is_unchanged() -> None:
    text = "- The loop stops one item early.\n- An empty list makes it divide by zero.\n\nWhy?"
    assert filter_hint(text, STUDENT) == text


def test_a_rewritten_answer_in_prose_is_removed() -> None:
    essay = (
        "The French Revolution began in 1789 because the monarchy was bankrupt and the estates "
        "general could not agree on how to vote, which angered the third estate."
    )
    hint = (
        "Your answer names the cause but not the event that started it.\n\n"
        "A better answer would be: The French Revolution began in 1789 because the monarchy was "
        "bankrupt and the estates general could not agree on how to vote, and on 14 July the "
        "Bastille was stormed."
    )
    shown = filter_hint(hint, essay)
    assert "Bastille" not in shown
    assert "Your answer names the cause but not the event that started it." in shown
    assert REMOVED_NOTE in shown


def test_a_hint_that_was_only_code_says_so() -> None:
    assert filter_hint("```\ndef add(a, b):\n    return a + b\n```", STUDENT) == REMOVED_NOTE


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("return a + b", True),
        ("def add(a, b):", True),
        ("for item in values:", True),
        ("else:", True),
        ("total = sum(values)", True),
        ("values.sort()", True),
        ("total = sum(", True),
        ("for example:", False),
        ("return the sum of a and b", False),
        ("Yes", False),
        ("# A heading", False),
        ("The answer is 3.", False),
        ("If the list is empty, return 0.", False),
    ],
)
def test_code_lines_are_told_from_sentences(line: str, code: bool) -> None:
    assert looks_like_code(line) is code


def test_hint_markdown_shows_the_score() -> None:
    assert hint_markdown("add", ["Look at the operator."], 0.5) == (
        "### Hint for `add`\n\n**Score:** 0.50\n\nLook at the operator."
    )


def test_the_gradient_prompt_asks_for_a_hint_in_feedback_only_mode(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.add_rule("is learning", LEAKY)
    code = tg.Variable(STUDENT, role_description="Python code", requires_grad=True)
    with tg.context(feedback_only=True):
        TestLoss(TESTS)(code).backward("anthropic:claude-haiku-5-5")
        system = fake_api.requests[-1]["body"]["system"]
        assert prompts.HINT_RULE.strip() in system
        with pytest.raises(tg.InputError, match="feedback-only"):
            tg.TGD([code]).step()


def test_a_hint_is_a_backward_argument(fake_api: FakeMessagesAPI) -> None:
    """backward(hint=True) asks for a hint whatever the setting; a plain backward asks for a fix."""
    fake_api.add_rule("is learning", LEAKY)
    code = tg.Variable(STUDENT, role_description="Python code", requires_grad=True)
    TestLoss(TESTS)(code).backward("anthropic:claude-haiku-5-5", hint=True)
    assert prompts.HINT_RULE.strip() in fake_api.requests[-1]["body"]["system"]
    code.gradients = []
    TestLoss(TESTS)(code).backward("anthropic:claude-haiku-5-5")
    assert prompts.HINT_RULE.strip() not in fake_api.requests[-1]["body"]["system"]


def test_the_class_feedback_hides_a_full_corrected_function(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    """`tg-magic feedback`: the model replies with the whole fixed function (fenced, and inline);
    the student's feedback cell keeps the explanation and none of the fix."""
    fake_api.add_rule("is learning", LEAKY)
    fake_api.add_rule("write the answer without thinking", "VERDICT: KEEP")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext tg_magic"),
        nbformat.v4.new_code_cell("%%tgvariable add --kind code\n" + STUDENT),
    ]
    nbformat.write(nb, tmp_path / "sam.ipynb")
    (tmp_path / "tests.py").write_text(TESTS)
    result = run_cli(
        "feedback", tmp_path / "sam.ipynb", "--target", "add", "--tests", tmp_path / "tests.py",
        "--out", tmp_path / "out", "--engine", "anthropic:claude-haiku-5-5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The hint request carried the rule; the reply's fix never reached the student.
    hint_requests = [r for r in fake_api.requests if "is learning" in str(r["body"])]
    assert len(hint_requests) == 1
    cells = nbformat.read(tmp_path / "out" / "sam.ipynb", as_version=4).cells
    feedback = cells[2]
    assert feedback.cell_type == "markdown"
    assert EXPLANATION in feedback.source
    assert visible_code(feedback.source) == []
    assert "a + b" not in (tmp_path / "out" / "summary.csv").read_text()
    assert "a + b" not in (tmp_path / "out" / "summary.html").read_text()


def test_the_labelled_set_has_the_size_the_issue_asks_for() -> None:
    items = hintset.items()
    leaks = [i for i in items if i["kind"] == "leak"]
    assert len(items) >= 40
    assert len({i["disguise"] for i in leaks}) >= 8
    assert len([i for i in items if i["kind"] == "fair"]) >= 15


def test_the_syntactic_layer_alone_on_the_labelled_set() -> None:
    figures = hintset.measure(hintset.syntactic_layer, "syntactic")
    print(figures.line("syntactic layer"))
    assert figures.leaks <= 1, figures.leaked_ids
    assert figures.damaged <= 2, figures.damaged_ids


def test_both_layers_with_a_scripted_model_on_the_labelled_set(fake_api: FakeMessagesAPI) -> None:
    fake_api.add_rule("write the answer without thinking", hintset.scripted_check)
    figures = hintset.measure(hintset.both_layers("anthropic:claude-haiku-5-5"))
    print(figures.line("both layers"))
    assert figures.leaks <= 1, figures.leaked_ids
    assert figures.damaged <= 2, figures.damaged_ids
    checks = [r for r in fake_api.requests if "without thinking" in str(r["body"]["system"])]
    assert checks, "the model's check ran over the fake Messages API"


def test_the_model_check_withholds_when_its_reply_has_no_verdict(
    fake_api: FakeMessagesAPI,
) -> None:
    fake_api.add_rule("write the answer without thinking", "Looks fine to me!")
    fair = next(i for i in hintset.items() if i["kind"] == "fair")
    shown = hintset.both_layers("anthropic:claude-haiku-5-5")(fair)
    assert shown == WITHHELD


@pytest.mark.parametrize("route", ["%tgconfig", "TG_MAGIC_FEEDBACK_ONLY"])
def test_feedback_only_mode_in_the_notebook(
    route: str, cells: Cells, fake_api: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps and accept are off; %tggrad and %tghint show a hint with the code taken out."""
    fake_api.add_rule("is learning", LEAKY)
    if route == "TG_MAGIC_FEEDBACK_ONLY":
        monkeypatch.setenv("TG_MAGIC_FEEDBACK_ONLY", "1")
    else:
        cells.run("%tgconfig --feedback-only on")
    cells.run(f"%%tgvariable add --kind code\n{STUDENT}")
    cells.run(f"%%tgloss add_tests --target add --tests\n{TESTS}")
    for magic in ("%tgoptimize", "%tgstep", "%tgaccept add"):
        cells.fails(magic, f"{magic.split()[0]} is disabled in feedback-only mode")
    for magic in ("%tggrad add", "%tghint add"):
        shown = cells.run(magic)
        assert shown.startswith("### Hint for `add`") and EXPLANATION in shown, shown
        assert visible_code(shown) == []
    assert not any("<IMPROVED_VARIABLE>" in str(r["body"]) for r in fake_api.requests)
    if route == "%tgconfig":  # the student's own kernel: they can turn it off
        cells.run("%tgconfig --feedback-only off")
        assert "step 1/1" in cells.run("%tgoptimize --steps 1")
