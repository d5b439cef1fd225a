"""TextGrad's tutorial notebooks and README examples (tutorials/*.ipy) run cell by cell, as in
Jupyter, against the loopback fakes. Shell escapes (`!pip install textgrad`) are recorded, not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import tg_magic as tg
from tests.fake_api import IMPROVE_SENTENCE, FakeMessagesAPI
from tests.test_openai_engine import _Chat

HERE = Path(__file__).parent / "tutorials"
# The code tutorial refuses, by design, to run model-written code ("Remove this if you'd like to
# run the code!"); Jupyter shows that error in those cells and the next cells run.
GUARD = "This function will run the code returned by GPT-4o"


def run(name: str) -> tuple[dict[str, Any], list[tuple[str, BaseException]], list[str]]:
    """Run every cell of tutorials/NAME.ipy in a fresh shell; the namespace, the errors, the
    shell commands."""
    cells = (HERE / f"{name}.ipy").read_text().split("# %%\n")[1:]
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    commands: list[str] = []
    shell.system = commands.append  # type: ignore[method-assign]
    errors = []
    try:
        for cell in cells:
            result = shell.run_cell(cell, store_history=False)
            if result.error_before_exec or result.error_in_exec:
                errors.append((cell, result.error_before_exec or result.error_in_exec))
        return dict(shell.user_ns), errors, commands
    finally:
        InteractiveShell.clear_instance()


def improved(text: str) -> bool:
    """The fake optimizer's mark on a value it rewrote."""
    return text.rstrip().endswith((IMPROVE_SENTENCE.strip(), "Double-check the count."))


def test_primitives() -> None:
    ns, errors, commands = run("primitives")
    assert errors == []
    assert commands == [
        "pip install textgrad # you might need to restart the notebook after installing textgrad"
    ]
    assert improved(ns["x"].value)
    assert ns["x"].gradients == []  # optimizer.zero_grad()


def test_solution_optimization() -> None:
    ns, errors, _ = run("solution_optimization")
    assert errors == []
    assert improved(ns["solution"].value)
    assert ns["solution"].value.startswith("To solve the equation 3x^2 - 7x + 2 = 0")


def test_prompt_optimization() -> None:
    ns, errors, _ = run("prompt_optimization")
    assert errors == []
    results = ns["results"]
    assert len(results["prompt"]) == 1 + 4 * 3  # 4 steps (12 examples, batches of 3), 3 epochs
    assert len(results["test_acc"][0]) == 10  # examples/data/test.jsonl
    assert results["prompt"][0] == ns["STARTING_SYSTEM_PROMPT"]


def test_test_time_loss_for_code() -> None:
    ns, errors, _ = run("test_time_loss_for_code")
    # Only the tutorial's own guard fails, in the cells that would run the code.
    assert [str(e) for _, e in errors] == [errors[0][1].args[0]] * 3
    assert GUARD in str(errors[0][1])
    assert all("run_function_in_interpreter" in cell for cell, _ in errors)
    code = ns["code"].value
    assert "tails" in code  # the scripted model's O(n log n) solution was taken
    assert "digraph" in str(ns["loss"].generate_graph())


def test_multimodal(textgrad_world: list[str]) -> None:
    ns, errors, _ = run("multimodal")
    assert errors == []
    assert (
        textgrad_world.count(
            "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"
        )
        == 1
    )
    images = [
        part
        for r in _Chat.received
        for m in r["body"]["messages"]
        if isinstance(m["content"], list)
        for part in m["content"]
        if part["type"] == "image_url"
    ]
    assert images and all(
        p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images
    )
    assert improved(ns["response"].value)


def test_readme_quickstart() -> None:
    ns, errors, _ = run("readme_quickstart")
    assert errors == []
    answer = ns["answer"]
    assert improved(answer.value)
    assert answer.role_description == "concise and accurate answer to the question"
    assert answer.past_values and not improved(answer.past_values[0])


def test_readme_solution_optimization() -> None:
    ns, errors, _ = run("readme_solution_optimization")
    assert errors == []
    assert improved(ns["solution"].value)


def test_readme_prompt_optimization() -> None:
    ns, errors, _ = run("readme_prompt_optimization")
    assert errors == []
    assert improved(ns["system_prompt"].value)
    assert ns["prediction"].value.startswith("Answer:")


def test_readme_experimental_engines(fake: FakeMessagesAPI) -> None:
    ns, errors, _ = run("readme_experimental_engines")
    assert errors == []
    assert isinstance(ns["engine"], tg.engine_experimental.litellm.LiteLLMEngine)
    assert any(
        isinstance(m["content"], list) for r in _Chat.received for m in r["body"]["messages"]
    )


@pytest.fixture(autouse=True)
def _import_experimental() -> None:
    import tg_magic.engine_experimental.litellm  # noqa: F401  (for the isinstance above)
