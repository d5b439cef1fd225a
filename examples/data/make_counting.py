"""Write the object-counting data set of the prompt optimization example.

    python examples/data/make_counting.py      # writes train.jsonl, val.jsonl, test.jsonl here

Each line is {"input": "I have a violin, two drums and a flute. How many musical instruments
do I have?", "target": "4"}: the task of the TextGrad paper's prompt optimization experiment,
generated so that it is small, reproducible and free to redistribute.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NOUNS = {
    "fruits": ["apple", "banana", "plum", "pear", "orange", "grape", "nectarine", "lemon"],
    "musical instruments": ["violin", "flute", "drum", "trumpet", "piano", "clarinet", "harp"],
    "objects": ["chair", "table", "lamp", "oven", "bed", "stove", "microwave", "fridge"],
    "animals": ["cat", "dog", "rabbit", "goat", "snail", "donkey", "frog", "pig"],
    "vegetables": ["carrot", "onion", "potato", "cabbage", "yam", "garlic", "turnip"],
}
NUMBER_WORDS = ["one", "two", "three", "four", "five"]
SIZES = {"train": 12, "val": 6, "test": 10}
SEED = 2406


def question(rng: random.Random) -> dict[str, str]:
    kind = rng.choice(sorted(NOUNS))
    items = rng.sample(NOUNS[kind], rng.randint(2, 5))
    counts = [rng.randint(1, 4) for _ in items]
    parts = []
    for item, count in zip(items, counts, strict=True):
        if count == 1:
            parts.append(f"{'an' if item[0] in 'aeiou' else 'a'} {item}")
        else:
            plural = item + ("es" if item.endswith("o") else "s")
            parts.append(f"{NUMBER_WORDS[count - 1]} {plural}")
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return {"input": f"I have {listed}. How many {kind} do I have?", "target": str(sum(counts))}


def main() -> None:
    rng = random.Random(SEED)
    folder = Path(__file__).parent
    for split, size in SIZES.items():
        rows = [question(rng) for _ in range(size)]
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / f"{split}.jsonl").write_text(text, encoding="utf-8")
        print(f"{split}.jsonl: {size} questions")


if __name__ == "__main__":
    main()
