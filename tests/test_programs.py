"""Programs: several prompt cells trained together through the user's own Python function,
in the notebook (`%%tgloss --program FUNC`) and in the library (`tg.optimize(program=...)`),
through the real SDK against the loopback fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tg_magic as tg
from tests import pipeline_fake as pf
from tests.cells import Cells
from tests.fake_api import FakeMessagesAPI, request_text

TWO_CELLS = [
    f"%%tgvariable extract\n{pf.EXTRACT}",
    f"%%tgvariable answer\n{pf.ANSWER}",
]
PIPELINE = (
    "import tg_magic as tg\ndef pipeline(q):\n    return tg.llm(answer, tg.llm(extract, q))\n"
)


def _gradient_requests(fake: FakeMessagesAPI, variable: str) -> list[str]:
    texts = [request_text(r["body"]) for r in fake.requests if isinstance(r["body"], dict)]
    return [
        t
        for t in texts
        if "The variable to give feedback on" in t and f"<VARIABLE>\n{variable}" in t
    ]


@pytest.fixture
def pipeline_cells(cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path) -> Cells:
    pf.install(fake_api)
    pf.write_data(tmp_path)
    for source in [*TWO_CELLS, PIPELINE]:
        cells.run(source)
        assert cells.error is None, cells.error
    return cells


def test_two_prompt_cells_are_trained_together(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells = pipeline_cells
    shown = cells.run("%tgloss acc --data counting.jsonl --metric number --program pipeline")
    assert cells.error is None
    assert "trains: extract, answer" in shown
    shown = cells.run("%tgoptimize acc --steps 3 --batch 4 --val-frac 0.34")
    assert cells.error is None, cells.error
    # One step finds both changes (0 -> 1 on validation); the run then says nothing is left.
    assert "validation 0.000 → 1.000" in shown
    assert "the validation score reached 1.0, the metric's maximum" in shown
    assert "step 2/3" not in shown
    extract, answer = cells.ns["extract"], cells.ns["answer"]
    assert pf.COUNTS in extract.value and pf.ADD in answer.value
    # Chain rule: the first prompt's gradient request carries the criticism of the list.
    asked = _gradient_requests(fake_api, pf.EXTRACT)
    assert asked and all(pf.CRITIQUE_OF_LIST in t for t in asked)
    # Each variable has its own candidate, with the step and the program's score.
    history = cells.run("%tghistory extract")
    assert "step 1" in history and "score before 0.000" in history
    shown = cells.run("%tgaccept --all")
    assert cells.error is None
    assert "extract: accepted #1" in shown and "answer: accepted #1" in shown
    variables = cells.shell.magics_manager.registry["TgMagics"].session.variables
    assert pf.COUNTS in variables["extract"].kernel_value
    assert pf.ADD in variables["answer"].kernel_value


def library_pipeline(
    fake: FakeMessagesAPI, folder: Path
) -> tuple[tg.Variable, tg.Variable, Any, Path]:
    """The two prompts as plain Variables, the program over them (as a script has them) and
    the data, with the fake model installed."""
    pf.install(fake)
    extract = tg.Variable(pf.EXTRACT, role_description="extraction prompt")
    answer = tg.Variable(pf.ANSWER, role_description="answer prompt")

    def pipeline(question: str) -> tg.Variable:
        return tg.llm(answer, tg.llm(extract, question))

    return extract, answer, pipeline, pf.write_data(folder)


def test_the_library_trains_a_program_the_same_way(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    _, _, pipeline, data = library_pipeline(fake_api, tmp_path)
    results = list(
        tg.optimize(program=pipeline, data=data, metric="number", steps=3, val_frac=0.34)
    )
    assert results[-1].val_after == 1.0
    assert {p.variable.role_description for p in results[0].proposals} == {
        "extraction prompt",
        "answer prompt",
    }


def test_plain_python_between_calls_keeps_the_chain(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells = pipeline_cells
    cells.run(
        "def parsed(q):\n"
        "    listed = tg.llm(extract, q)\n"
        "    lines = '\\n'.join(p.strip() for p in listed.value.split(';'))\n"
        "    kept = tg.Variable(lines, predecessors=[listed], role_description='the list')\n"
        "    return tg.llm(answer, kept)\n"
    )
    shown = cells.run("%tgloss acc --data counting.jsonl --metric number --program parsed")
    assert "trains: extract, answer" in shown, shown
    cells.run("%tgoptimize acc --steps 2 --batch 4 --val-frac 0.34")
    assert cells.error is None, cells.error
    assert pf.COUNTS in cells.ns["extract"].value and pf.ADD in cells.ns["answer"].value


def test_a_program_that_cuts_the_chain_is_told_so(pipeline_cells: Cells) -> None:
    cells = pipeline_cells
    cells.run(
        "def cut(q):\n    listed = tg.llm(extract, q)\n    return tg.llm(answer, listed.value)\n"
    )
    shown = cells.run("%tgloss acc --data counting.jsonl --metric number --program cut")
    assert "trains: answer" in shown
    assert "cut cuts the chain at extract" in shown
    cells.run("def all_cut(q):\n    return tg.llm('Answer.', tg.llm(extract, q).value)\n")
    cells.fails(
        "%tgloss acc2 --data counting.jsonl --metric number --program all_cut",
        "all_cut cuts the chain at extract",
    )


def test_examples_of_a_batch_run_at_once_sync_or_async(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells = pipeline_cells
    cells.run(
        "async def pipeline_async(q):\n    return tg.llm(answer, tg.llm(extract, q))\n"
        "def reading(q):\n    listed = tg.llm(extract, q)\n    listed.value\n"
        "    return tg.llm(answer, listed)\n"
    )
    cells.run("%tgconfig --cache off")  # each program's calls really go out
    for program in ("pipeline_async", "reading"):
        fake_api.latency = 0.05
        cells.run(f"%tgloss {program}_loss --data counting.jsonl --program {program}")
        assert cells.error is None, cells.error
        cells.run(f"%tgforward {program}_loss")
        assert cells.error is None, cells.error
        assert fake_api.max_concurrency >= 4  # six examples' calls overlap, not one by one
        del cells.shell.magics_manager.registry["TgMagics"].session.losses[f"{program}_loss"]
        fake_api.reset()
        pf.install(fake_api)


def test_k_candidates_are_sets_of_values_scored_per_example(
    fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    extract, answer, pipeline, data = library_pipeline(fake_api, tmp_path)
    [first, *_] = tg.optimize(
        program=pipeline, data=data, metric="number", steps=2, val_frac=0.34, candidates=3
    )
    assert first.candidates
    for candidate in first.candidates:
        assert len(candidate.values) == 2 and len(candidate.per_example) == 2
    assert first.val_after == 1.0
    assert pf.COUNTS in extract.value and pf.ADD in answer.value


# -- bad input, one line each ----------------------------------------------------------------


def test_bad_programs_are_one_line_each(pipeline_cells: Cells) -> None:
    cells = pipeline_cells
    loss = "%tgloss bad --data counting.jsonl --metric number --program"
    cells.fails(f"{loss} nowhere", "--program nowhere is not defined")
    cells.run("not_a_function = 3")
    cells.fails(f"{loss} not_a_function", "--program not_a_function is not a function")
    cells.run("def boom(q):\n    raise KeyError('no such item')\n")
    cells.fails(f"{loss} boom", "boom raised KeyError")
    cells.run("def listy(q):\n    return [tg.llm(answer, q)]\n")
    cells.fails(f"{loss} listy", "listy returned list, not text")
    cells.run("def alone(q):\n    return tg.llm('Answer briefly.', q)\n")
    cells.fails(f"{loss} alone", "alone uses none of the variables (known: answer, extract)")
    cells.fails(
        "%tgloss bad --target answer --data counting.jsonl --program pipeline",
        "finds the variables it trains itself: drop --target",
    )
    cells.fails("%tgloss bad --program pipeline", "needs a data set")
    cells.run("%tgloss first --data counting.jsonl --metric number --program pipeline")
    cells.fails(f"{loss} pipeline", "extract is already trained by the loss first")


def test_a_program_failing_on_some_examples_goes_on_and_on_all_stops(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells = pipeline_cells
    cells.run(
        "def picky(q):\n"
        "    if 'dog' in q:\n"
        "        raise ValueError('dogs are not counted')\n"
        "    return tg.llm(answer, tg.llm(extract, q))\n"
    )
    cells.run("%tgloss acc --data counting.jsonl --metric number --program picky")
    assert cells.error is None, cells.error
    shown = cells.run("%tgoptimize acc --steps 1 --batch 6")
    assert cells.error is None, cells.error
    assert "example 2: picky raised ValueError: dogs are not counted" in shown
    assert pf.COUNTS in cells.ns["extract"].value  # the step went on without that example
    cells.run("def picky(q):\n    raise ValueError('nothing today')\n")
    cells.fails("%tgoptimize acc --steps 1", "picky raised ValueError: nothing today")


def test_a_cycle_in_a_program_is_one_line(pipeline_cells: Cells) -> None:
    cells = pipeline_cells
    cells.run(
        "def loop(q):\n"
        "    out = tg.llm(answer, tg.llm(extract, q))\n"
        "    extract.predecessors.append(out)\n"
        "    return out\n"
    )
    cells.fails("%tgloss acc --data counting.jsonl --metric number --program loop", "cycle")
    cells.ns["extract"].predecessors.clear()


def test_progress_names_what_changed_and_accept_all_takes_every_cell(
    cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    import nbformat

    from tg_magic.notebook.accept_all import AcceptAllView
    from tg_magic.notebook.progress import ProgressView

    notebook = tmp_path / "pipeline.ipynb"  # the cells live in a file no frontend holds
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in TWO_CELLS]
    nbformat.write(nb, notebook)
    cells.run(f"%tgconfig --notebook {notebook}")
    pf.install(fake_api)
    pf.write_data(tmp_path)
    for source in [*TWO_CELLS, PIPELINE]:
        cells.run(source)
    cells.run('%config TgMagics.widgets = "on"')
    cells.run("%tgloss acc --data counting.jsonl --metric number --program pipeline")
    cells.run("%tgoptimize acc --steps 2 --batch 4 --val-frac 0.34")
    assert cells.error is None, cells.error
    display = cells.shell.magics_manager.registry["TgMagics"].display
    [progress] = [v for v in display.views if isinstance(v, ProgressView)]
    assert "step 1/2: score 0.000, validation 0.000 → 1.000, kept; changed: extract, answer" in (
        progress.log.value
    )
    [accept_all] = [v for v in display.views if isinstance(v, AcceptAllView)]
    assert accept_all.button.description == "Accept all (extract, answer)"
    assert not accept_all.button.disabled
    accept_all.button.click()
    assert "extract: accepted #1" in accept_all.status.value
    assert "answer: accepted #1" in accept_all.status.value
    assert accept_all.button.disabled  # nothing left to accept
    written = [c.source for c in nbformat.read(notebook, as_version=4).cells]
    assert written == [f"{TWO_CELLS[0]} {pf.COUNTS}.", f"{TWO_CELLS[1]} {pf.ADD}."]
    # Ctrl-Z in the extract cell (reported by the extension): Accept all can write it again.
    edits = cells.shell.magics_manager.registry["TgMagics"].session.edits
    cell_id = edits.session.variables["extract"].cell.cell_id
    edits.cell_changed(cell_id, TWO_CELLS[0])
    assert not accept_all.button.disabled
    assert edits.waiting(["extract", "answer"]) == ["extract"]
    session = cells.shell.magics_manager.registry["TgMagics"].session
    assert pf.COUNTS in session.variables["extract"].kernel_value
    assert pf.ADD in session.variables["answer"].kernel_value
    assert cells.ns["extract"] is session.variables["extract"].variable


def test_several_input_columns_reach_the_program_as_a_dict(
    pipeline_cells: Cells, tmp_path: Path
) -> None:
    cells = pipeline_cells
    rows = [json.dumps({"question": q, "asker": "Ada", "target": str(n)}) for q, n in pf.QUESTIONS]
    (tmp_path / "fields.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cells.run(
        "seen = []\n"
        "def fields(x):\n"
        "    seen.append(sorted(x))\n"
        "    return tg.llm(answer, tg.llm(extract, x['question']))\n"
    )
    shown = cells.run("%tgloss acc --data fields.jsonl --metric number --program fields")
    assert "trains: extract, answer" in shown
    cells.run("%tgoptimize acc --steps 1 --batch 6")
    assert cells.error is None, cells.error
    assert cells.ns["seen"][0] == ["asker", "question"]
    assert pf.COUNTS in cells.ns["extract"].value


def test_the_final_line_scores_what_the_run_kept(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI, tmp_path: Path
) -> None:
    cells = pipeline_cells
    easy = {"input": "I have a cat and a dog. How many animals do I have?", "target": "2"}
    rows = [json.dumps({"input": q, "target": str(n)}) for q, n in pf.QUESTIONS]
    (tmp_path / "mixed.jsonl").write_text("\n".join(rows + [json.dumps(easy)] * 4) + "\n")
    fake_api.add_rule("<IMPROVED_VARIABLE>", "<IMPROVED_VARIABLE>Say nothing.</IMPROVED_VARIABLE>")
    cells.run("%tgloss acc --data mixed.jsonl --metric number --program pipeline")
    shown = cells.run("%tgoptimize acc --steps 2 --batch 2 --val mixed.jsonl")
    assert shown.count("validation 0.400 → 0.000, not kept") == 2, shown
    # The run keeps the prompts it started with: their score is the run's last word.
    assert "done: 2 step(s); score 0.400 → 0.400" in shown, shown


def test_a_loop_and_a_branch_around_calls_keep_the_chain(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells = pipeline_cells
    cells.run(
        "def looped(q):\n"
        "    text = q\n"
        "    for prompt in (extract, answer):  # the chain, built in a loop\n"
        "        text = tg.llm(prompt, text)\n"
        "    if 'apples' in q:  # a branch: both ways return a model's answer\n"
        "        return text\n"
        "    return tg.Variable(text.value.strip(), predecessors=[text], role_description='a')\n"
    )
    shown = cells.run("%tgloss acc --data counting.jsonl --metric number --program looped")
    assert "trains: extract, answer" in shown, shown
    cells.run("%tgoptimize acc --steps 1 --batch 6")
    assert cells.error is None, cells.error
    assert pf.COUNTS in cells.ns["extract"].value and pf.ADD in cells.ns["answer"].value


def test_a_redefined_program_trains_what_it_reaches_now(
    pipeline_cells: Cells, fake_api: FakeMessagesAPI
) -> None:
    cells = pipeline_cells
    cells.run("def prog(q):\n    return tg.llm(answer, q)\n")
    assert "trains: answer" in cells.run(
        "%tgloss acc --data counting.jsonl --metric number --program prog"
    )
    cells.run("def prog(q):\n    return tg.llm(answer, tg.llm(extract, q))\n")  # both now
    cells.run("%tgoptimize acc --steps 1 --batch 6")
    assert cells.error is None, cells.error
    assert pf.COUNTS in cells.ns["extract"].value and pf.ADD in cells.ns["answer"].value


def test_a_batch_on_which_the_program_always_fails_stops_in_one_line() -> None:
    from tg_magic.data import Example
    from tg_magic.loss import ProgramLoss

    def shy(question: str) -> tg.Variable:
        raise LookupError("not this one")

    batch = [Example("I have a pear. How many fruits do I have?", "1", row=3)]
    with pytest.raises(tg.InputError, match=r"shy failed on every example \(example 3: shy"):
        ProgramLoss(shy, "number")(batch)
