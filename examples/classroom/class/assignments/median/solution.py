# The reference solution: never sent to a student; the model's leak check compares hints with it.
def median(values):
    s = sorted(values)
    m = len(s) // 2
    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2
