"""TextGrad's `textgrad.tasks`: `load_task(name, evaluation_api)` and `DataLoader`.

TextGrad downloads its data sets on first use. tg-magic downloads nothing: it reads the same
files from where TextGrad keeps them (`<user cache>/textgrad/<task>/{train,val,test}.csv`, or
BIG-Bench Hard's own `<task>.json` there, split 50/100/rest as TextGrad splits it), or from `root=`.
When they are not there it says, in one line, where to put them. It never makes up examples.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..functions import StringBasedFunction
from ..variable import Variable

AVAILABLE_DATASETS = ["BBH_object_counting", "BBH_word_sorting", "GSM8K_DSPy"]
SUPPORTED = ["BBH_object_counting"]
BBH_URL = "https://raw.githubusercontent.com/suzgunmirac/BIG-Bench-Hard/main/bbh/{task}.json"
COUNTING_DESCRIPTION = (
    "You will answer a reasoning question. Think step by step. The last line of your response "
    "should be of the following format: 'Answer: $VALUE' where VALUE is a numerical value."
)


def default_root() -> Path:
    """Where TextGrad keeps its data sets (so data it downloaded is found here too)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("textgrad"))


class Dataset:
    """Examples as (question, answer) pairs, indexable like TextGrad's data sets."""

    def __init__(self, examples: Sequence[tuple[str, str]], task_description: str = "") -> None:
        self.examples = list(examples)
        self._task_description = task_description

    def __getitem__(self, index: int) -> tuple[str, str]:
        return self.examples[index]

    def __len__(self) -> int:
        return len(self.examples)

    def get_task_description(self) -> str:
        return self._task_description

    get_default_task_instruction = get_task_description


class BigBenchHard(Dataset):
    """A BIG-Bench Hard task's split, read from local files (see the module's docstring)."""

    def __init__(self, task_name: str, root: str | None = None, split: str = "train") -> None:
        if split not in ("train", "val", "test"):
            raise InputError(f"split must be train, val or test, not {split!r}")
        folder = Path(root) if root else default_root()
        super().__init__(_read_bbh(folder, task_name, split), COUNTING_DESCRIPTION)
        self.root, self.task_name, self.split = folder, task_name, split


def _read_bbh(folder: Path, task: str, split: str) -> list[tuple[str, str]]:
    csv_path = folder / task / f"{split}.csv"
    if csv_path.exists():
        with csv_path.open(newline="", encoding="utf-8") as f:
            return [(row["x"], row["y"]) for row in csv.DictReader(f)]
    json_path = folder / f"{task}.json"
    if json_path.exists():
        examples = json.loads(json_path.read_text(encoding="utf-8"))["examples"]
        part = {"train": examples[:50], "val": examples[50:150], "test": examples[150:]}[split]
        return [(ex["input"], str(ex["target"])) for ex in part]
    raise InputError(
        f"BBH_{task} is not on this machine: save {BBH_URL.format(task=task)} as {json_path} "
        f"(or TextGrad's {folder / task}/{{train,val,test}}.csv), or pass root=FOLDER"
    )


def parse_integer_answer(answer: str, only_first_line: bool = False) -> int:
    """The last number in a model's answer (0 when there is none), as TextGrad's metric reads it."""
    if only_first_line:
        answer = answer.strip().split("\n")[0]
    numbers = [t for t in answer.split() if any(c.isdigit() for c in t)]
    if not numbers:
        return 0
    digits = re.sub(r"\D", "", numbers[-1].split(".")[0])
    return int(digits) if digits else 0


def string_based_equality_fn(prediction: Variable, ground_truth_answer: Variable) -> int:
    """1 when the prediction's last number equals the answer's, else 0."""
    return int(
        parse_integer_answer(str(prediction.value))
        == parse_integer_answer(str(ground_truth_answer.value))
    )


def load_task(
    task_name: str, evaluation_api: Any = None, root: str | None = None
) -> tuple[Dataset, Dataset, Dataset, Callable[..., Variable]]:
    """(train, val, test, eval_fn) of a TextGrad task; `root` is where its files are."""
    if task_name == "BBH_object_counting":
        task = task_name.removeprefix("BBH_")
        splits = [BigBenchHard(task, root, split) for split in ("train", "val", "test")]
        eval_fn = StringBasedFunction(
            string_based_equality_fn,
            function_purpose="The runtime of string-based function that checks if the "
            "prediction is correct.",
        )
        return splits[0], splits[1], splits[2], eval_fn
    if task_name in AVAILABLE_DATASETS:
        raise InputError(f"{task_name} is not available in tg-magic yet; it has {SUPPORTED}")
    raise InputError(f"unknown task {task_name!r}: tg-magic has {SUPPORTED}")


def load_instance_task(task_name: str, evaluation_api: Any = None, **kwargs: Any) -> Any:
    raise InputError(f"{task_name}: TextGrad's instance tasks are not available in tg-magic")


class DataLoader:
    """Mini-batches of a data set: `for batch_x, batch_y in DataLoader(train, 3)`."""

    def __init__(self, data: Any, batch_size: int = 32, shuffle: bool = True) -> None:
        if batch_size < 1:
            raise InputError("batch_size must be at least 1")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle

    def __iter__(self) -> Iterator[Any]:
        order = list(range(len(self.data)))
        if self.shuffle:
            random.shuffle(order)
        for start in range(0, len(order), self.batch_size):
            batch = [self.data[i] for i in order[start : start + self.batch_size]]
            yield tuple(zip(*batch, strict=True)) if isinstance(batch[0], tuple) else batch

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)


__all__ = [
    "AVAILABLE_DATASETS",
    "BigBenchHard",
    "DataLoader",
    "Dataset",
    "load_instance_task",
    "load_task",
    "string_based_equality_fn",
]
