"""Small functions with the bugs people write (off-by-one, unsorted input, wrong type, a missing
edge case...), each with the tests an optimization sees and a hidden test it never sees."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuggyFunction:
    name: str
    bug: str  # the kind of mistake
    code: str
    tests: str  # what the optimization is run against
    hidden: str  # checked after the optimization only


def _f(name: str, bug: str, code: str, tests: str, hidden: str) -> BuggyFunction:
    return BuggyFunction(
        name, bug, code.strip() + "\n", tests.strip() + "\n", hidden.strip() + "\n"
    )


TASKS: list[BuggyFunction] = [
    _f(
        "median",
        "unsorted input",
        "def median(xs):\n    n = len(xs)\n    mid = n // 2\n"
        "    if n % 2:\n        return xs[mid]\n    return (xs[mid - 1] + xs[mid]) / 2",
        "def test_sorted():\n    assert median([1, 2, 3]) == 2\n\n"
        "def test_unsorted():\n    assert median([3, 1, 2]) == 2\n"
        "    assert median([4, 1, 3, 2]) == 2.5",
        "assert median([9, 7, 8]) == 8",
    ),
    _f(
        "mean",
        "integer division",
        "def mean(xs):\n    return sum(xs) // len(xs)",
        "def test_mean():\n    assert mean([1, 2]) == 1.5\n    assert mean([2, 4, 6]) == 4",
        "assert mean([1, 2, 2]) == 5 / 3",
    ),
    _f(
        "last_n",
        "off-by-one",
        'def last_n(items, n):\n    """The last n items of a list."""\n    return items[-n - 1:]',
        "def test_last_n():\n    assert last_n([1, 2, 3, 4], 2) == [3, 4]\n"
        "    assert last_n([1, 2, 3], 1) == [3]",
        "assert last_n(['a', 'b', 'c', 'd', 'e'], 3) == ['c', 'd', 'e']",
    ),
    _f(
        "count_vowels",
        "missing case",
        "def count_vowels(text):\n    return sum(1 for c in text if c in 'aeiou')",
        "def test_vowels():\n    assert count_vowels('banana') == 3\n"
        "    assert count_vowels('APPLE') == 2",
        "assert count_vowels('Oak Tree') == 4",
    ),
    _f(
        "is_palindrome",
        "missing normalisation",
        "def is_palindrome(text):\n    return text == text[::-1]",
        "def test_palindrome():\n    assert is_palindrome('level')\n"
        "    assert is_palindrome('Racecar')\n    assert not is_palindrome('python')",
        "assert is_palindrome('Noon')",
    ),
    _f(
        "fizzbuzz",
        "wrong order of checks",
        "def fizzbuzz(n):\n    if n % 3 == 0:\n        return 'Fizz'\n    if n % 5 == 0:\n"
        "        return 'Buzz'\n    if n % 15 == 0:\n        return 'FizzBuzz'\n    return str(n)",
        "def test_fizzbuzz():\n    assert fizzbuzz(3) == 'Fizz'\n"
        "    assert fizzbuzz(10) == 'Buzz'\n"
        "    assert fizzbuzz(15) == 'FizzBuzz'\n    assert fizzbuzz(7) == '7'",
        "assert fizzbuzz(45) == 'FizzBuzz'",
    ),
    _f(
        "range_sum",
        "off-by-one",
        'def range_sum(a, b):\n    """The sum of the integers from a to b, both included."""\n'
        "    return sum(range(a, b))",
        "def test_range_sum():\n    assert range_sum(1, 3) == 6\n    assert range_sum(5, 5) == 5",
        "assert range_sum(-2, 2) == 0 and range_sum(10, 12) == 33",
    ),
    _f(
        "safe_div",
        "missing edge case",
        'def safe_div(a, b):\n    """a / b, or None when b is zero."""\n    return a / b',
        "def test_safe_div():\n    assert safe_div(6, 3) == 2\n    assert safe_div(1, 0) is None",
        "assert safe_div(0, 0) is None",
    ),
    _f(
        "word_count",
        "wrong split",
        "def word_count(text):\n    return len(text.split(' '))",
        "def test_word_count():\n    assert word_count('one two three') == 3\n"
        "    assert word_count('one  two') == 2\n    assert word_count('') == 0",
        "assert word_count('  padded   words ') == 2",
    ),
    _f(
        "max_index",
        "bad initial value",
        'def max_index(xs):\n    """The index of the largest item."""\n    best, index = 0, 0\n'
        "    for i, x in enumerate(xs):\n        if x > best:\n            best, index = x, i\n"
        "    return index",
        "def test_max_index():\n    assert max_index([1, 5, 2]) == 1\n"
        "    assert max_index([-3, -1, -2]) == 1",
        "assert max_index([-5, -2, -7]) == 1",
    ),
    _f(
        "parse_ints",
        "wrong type",
        'def parse_ints(text):\n    """\'1, 2,3\' -> [1, 2, 3]"""\n'
        "    return [part.strip() for part in text.split(',')]",
        "def test_parse_ints():\n    assert parse_ints('1, 2,3') == [1, 2, 3]",
        "assert parse_ints('10,-4') == [10, -4]",
    ),
    _f(
        "chunk",
        "drops the last part",
        'def chunk(xs, size):\n    """Pieces of `size` items (the last may be shorter)."""\n'
        "    return [xs[i:i + size] for i in range(0, len(xs) - size + 1, size)]",
        "def test_chunk():\n    assert chunk([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]\n"
        "    assert chunk([1, 2, 3], 2) == [[1, 2], [3]]",
        "assert chunk([1, 2, 3, 4, 5], 3) == [[1, 2, 3], [4, 5]]",
    ),
    _f(
        "to_fahrenheit",
        "wrong formula",
        "def to_fahrenheit(celsius):\n    return (celsius + 32) * 9 / 5",
        "def test_fahrenheit():\n    assert to_fahrenheit(0) == 32\n"
        "    assert to_fahrenheit(100) == 212",
        "assert to_fahrenheit(-40) == -40",
    ),
    _f(
        "second_largest",
        "duplicates",
        'def second_largest(xs):\n    """The second largest distinct value."""\n'
        "    return sorted(xs)[-2]",
        "def test_second_largest():\n    assert second_largest([1, 3, 2]) == 2\n"
        "    assert second_largest([5, 5, 4]) == 4",
        "assert second_largest([7, 7, 7, 1]) == 1",
    ),
    _f(
        "title_words",
        "only the first word",
        'def title_words(text):\n    """Capitalize the first letter of every word."""\n'
        "    return text.capitalize()",
        "def test_title_words():\n    assert title_words('hello world') == 'Hello World'",
        "assert title_words('a b c') == 'A B C'",
    ),
    _f(
        "dedupe",
        "loses the order",
        'def dedupe(xs):\n    """The items without repeats, in first-seen order."""\n'
        "    return list(set(xs))",
        "def test_dedupe():\n    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]\n"
        "    assert dedupe(['b', 'a', 'b']) == ['b', 'a']",
        "assert dedupe([9, 8, 9, 7]) == [9, 8, 7]",
    ),
    _f(
        "is_leap",
        "missing rule",
        "def is_leap(year):\n    return year % 4 == 0 and year % 100 != 0",
        "def test_leap():\n    assert is_leap(2024)\n    assert not is_leap(1900)\n"
        "    assert is_leap(2000)",
        "assert is_leap(1600) and not is_leap(2023)",
    ),
    _f(
        "flatten",
        "non-list items",
        'def flatten(nested):\n    """One level: [[1, 2], 3, [4]] -> [1, 2, 3, 4]."""\n'
        "    out = []\n    for item in nested:\n        out.extend(item)\n    return out",
        "def test_flatten():\n    assert flatten([[1, 2], [3]]) == [1, 2, 3]\n"
        "    assert flatten([[1, 2], 3, [4]]) == [1, 2, 3, 4]",
        "assert flatten([0, [1], 2]) == [0, 1, 2]",
    ),
]
