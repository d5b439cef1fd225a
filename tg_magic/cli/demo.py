"""`tg-magic demo`: a small prompt optimization end to end (forward, loss, gradients, step, diff)
on generated counting questions."""

from __future__ import annotations

import argparse
import difflib
import random
import time
import warnings
from typing import Any

from ..text import one_line
from . import engine_for, fail

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


def cmd_demo(args: argparse.Namespace) -> int:
    import tg_magic as tg
    from tg_magic.data import METRICS

    if args.steps < 1 or args.questions < 1:
        return fail("demo", "--steps must be at least 1")
    engine = engine_for(args.engine) or tg.get_engine(None)
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
            print(f"  {mark} {one_line(question, 60)} -> {one_line(prediction.value, 40)!r}")
        with tg.track_usage() as used:
            loss.backward()
        print(
            f"step {step}/{args.steps}  backward: {len(prompt.gradients)} gradients  [{used.usage}]"
        )
        if prompt.gradients:
            print(f"  e.g. {one_line(prompt.gradients[0].text, 160)}")
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
    from ..prompts import DEMO_CONSTRAINTS

    return list(DEMO_CONSTRAINTS)


def add_parser(sub: Any) -> None:
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
