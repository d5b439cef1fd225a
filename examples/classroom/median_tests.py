# The teacher's tests for the median assignment: `tg-magic feedback ... --tests median_tests.py`.
# Each test_* function is one column of the summary table. They run against the student's cell
# in a separate, contained process (tg_magic.sandbox), never in the teacher's Python.


def test_odd_length():
    assert median([3, 1, 2]) == 2


def test_even_length():
    assert median([4, 1, 3, 2]) == 2.5


def test_single_value():
    assert median([7]) == 7


def test_list_unchanged():
    values = [3, 1, 2]
    median(values)
    assert values == [3, 1, 2]
