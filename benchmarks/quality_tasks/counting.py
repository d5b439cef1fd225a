"""Object counting in the form of BIG-Bench Hard's task, generated from a seed.

"I have a piano, two goats, a flute, and three carrots. How many musical instruments do I
have?" -> 2. A list mixes items of the asked category with distractors of other categories;
counts are spelled as words, as in BBH. The paper's split: 50 train, 100 validation, 100 test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tg_magic.data import METRICS, Example

CATEGORIES: dict[str, list[tuple[str, str]]] = {
    "musical instruments": [
        ("piano", "pianos"),
        ("flute", "flutes"),
        ("violin", "violins"),
        ("trumpet", "trumpets"),
        ("drum", "drums"),
        ("clarinet", "clarinets"),
        ("trombone", "trombones"),
        ("accordion", "accordions"),
    ],
    "fruits": [
        ("apple", "apples"),
        ("banana", "bananas"),
        ("plum", "plums"),
        ("peach", "peaches"),
        ("grape", "grapes"),
        ("strawberry", "strawberries"),
        ("orange", "oranges"),
        ("nectarine", "nectarines"),
    ],
    "vegetables": [
        ("carrot", "carrots"),
        ("potato", "potatoes"),
        ("onion", "onions"),
        ("cabbage", "cabbages"),
        ("yam", "yams"),
        ("garlic", "garlics"),
        ("cauliflower", "cauliflowers"),
        ("stalk of celery", "stalks of celery"),
    ],
    "animals": [
        ("goat", "goats"),
        ("rabbit", "rabbits"),
        ("snake", "snakes"),
        ("cow", "cows"),
        ("duck", "ducks"),
        ("pig", "pigs"),
        ("frog", "frogs"),
        ("mouse", "mice"),
    ],
    "pieces of furniture": [
        ("chair", "chairs"),
        ("table", "tables"),
        ("desk", "desks"),
        ("bed", "beds"),
        ("stool", "stools"),
        ("wardrobe", "wardrobes"),
        ("bookshelf", "bookshelves"),
        ("couch", "couches"),
    ],
}
WORDS = ["zero", "one", "two", "three", "four", "five"]
SPLIT = (50, 100, 100)  # train, validation, test (the paper's)
METRIC = METRICS["number"]  # the last number in the answer equals the count
START_PROMPT = "You will answer a reasoning question. The last line of your answer is the number."


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example]


def _article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def question(rng: random.Random) -> Example:
    """One question: 4-9 kinds of items, up to 3 of each, one category asked about."""
    asked = rng.choice(sorted(CATEGORIES))
    others = [c for c in sorted(CATEGORIES) if c != asked]
    kinds = rng.randint(4, 9)
    n_asked = rng.randint(2, min(kinds - 1, len(CATEGORIES[asked])))
    pool = [(asked, item) for item in rng.sample(CATEGORIES[asked], n_asked)]
    distractors = [(c, item) for c in others for item in CATEGORIES[c]]
    pool += rng.sample(distractors, kinds - n_asked)
    rng.shuffle(pool)
    parts, total = [], 0
    for category, (one, many) in pool:
        count = rng.choice([1, 1, 1, 2, 3])
        parts.append(_article(one) if count == 1 else f"{WORDS[count]} {many}")
        if category == asked:
            total += count
    items = ", ".join(parts[:-1]) + ", and " + parts[-1]
    return Example(f"I have {items}. How many {asked} do I have?", str(total))


def splits(seed: int = 0, sizes: tuple[int, int, int] = SPLIT) -> Splits:
    """Train, validation and test sets from one seed; no question appears in two sets."""
    rng = random.Random(seed)
    seen: set[str] = set()
    examples: list[Example] = []
    while len(examples) < sum(sizes):
        example = question(rng)
        if example.input not in seen:
            seen.add(example.input)
            examples.append(example)
    a, b = sizes[0], sizes[0] + sizes[1]
    return Splits(examples[:a], examples[a:b], examples[b:])


def correct(answer: str, target: str) -> bool:
    return bool(METRIC(answer, target))
