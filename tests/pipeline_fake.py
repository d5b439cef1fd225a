"""A fake model for two-prompt programs: extract-then-answer over counting questions.

The answers are right only when the extraction prompt asks for counts (WITH COUNTS) and the
answer prompt asks to add them (ADD THE COUNTS); gradients ask for exactly that, and the
optimizer adds what the feedback asks. The intermediate output's criticism carries a marker
(CRITIQUE_OF_LIST) so a test can see it reach the first prompt's gradient request (eq. 5).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.fake_api import NUMBER_WORDS, FakeMessagesAPI

EXTRACT = "List the items of the question."
ANSWER = "Answer the question from the list."
COUNTS = "WITH COUNTS"
ADD = "ADD THE COUNTS"
CRITIQUE_OF_LIST = "CRITIQUE_OF_LIST: the list lost how many of each item there are"

QUESTIONS = [
    ("I have two apples, a pear and three plums. How many fruits do I have?", 6),
    ("I have a dog, four cats and a snail. How many animals do I have?", 6),
    ("I have three chairs and a table. How many objects do I have?", 4),
    ("I have a flute, two pianos and a violin. How many instruments do I have?", 4),
    ("I have two beds, a sofa and two lamps. How many objects do I have?", 5),
    ("I have four grapes and a lemon. How many fruits do I have?", 5),
]


def write_data(folder: Path, name: str = "counting.jsonl") -> Path:
    path = folder / name
    rows = [json.dumps({"input": q, "target": str(n)}) for q, n in QUESTIONS]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _items(question: str) -> list[tuple[str, int]]:
    sentence = question.split(".")[0].removeprefix("I have ")
    found = []
    for part in re.split(r",|\band\b", sentence):
        words = part.split()
        if words:
            found.append((words[-1].rstrip("s"), NUMBER_WORDS.get(words[0].lower(), 1)))
    return found


def _block(text: str, tag: str) -> str:
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return found[-1].strip() if found else ""


def reply(body: dict[str, Any], text: str) -> str:
    system = body.get("system") or ""
    system = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)
    if "<IMPROVED_VARIABLE>" in text:  # the optimizer: add what the feedback asks
        value = _block(text, "VARIABLE")
        feedback = " ".join(re.findall(r"<FEEDBACK>(.*?)</FEEDBACK>", text, re.DOTALL))
        for wish in (COUNTS, ADD):
            if wish in feedback and wish not in value:
                value += f" {wish}."
        return f"<IMPROVED_VARIABLE>{value}</IMPROVED_VARIABLE>"
    if "The variable to give feedback on" in text:  # a gradient
        value = _block(text, "VARIABLE")
        if value.startswith(EXTRACT):
            return f"The extraction prompt should ask for each item {COUNTS}."
        if value.startswith(ANSWER):
            return f"The answer prompt should tell the model to {ADD}."
        if "metric" in _block(text, "CALL").lower() or "number" in _block(text, "CALL"):
            return "The total is wrong: every item's count must be added."
        return CRITIQUE_OF_LIST + f"; give each item {COUNTS}."
    if system.startswith(EXTRACT):  # the forward: extract
        question = text[len(system) :].strip()
        if COUNTS in system:
            return "; ".join(f"{item}: {n}" for item, n in _items(question))
        return ", ".join(item for item, _ in _items(question))
    if system.startswith(ANSWER):  # the forward: answer from the list
        listed = text[len(system) :].strip()
        counts = [int(n) for n in re.findall(r": (\d+)", listed)]
        if ADD in system and counts:
            return f"Total: {sum(counts)}"
        return f"Total: {len(re.split(r'[;,]', listed))}"
    return "I cannot tell."


def install(fake: FakeMessagesAPI) -> None:
    fake.add_rule(re.compile(r"[\s\S]"), reply)
