# The teacher's tests for `median`. The same file serves `tg-magic feedback --tests` and the hint
# service. A comment right above a test marks it: `# hidden` (run and scored; the student sees
# its name and whether it passed, never its body or message) and/or `# N points` (default 1).


def test_odd_length():
    assert median([3, 1, 2]) == 2


# 2 points
def test_list_unchanged():
    values = [3, 1, 2]
    median(values)
    assert values == [3, 1, 2]


# hidden, 2 points
def test_even_length():
    assert median([4, 1, 3, 2]) == 2.5


# hidden
def test_single_value():
    assert median([7]) == 7
