"""Every prompt tg_magic sends, in one place. They are domain-free: the same gradient and update
prompts serve prompts, code, answers and plans. Small local models get shorter versions.
"""

from __future__ import annotations

import re

OPEN, CLOSE = "<IMPROVED_VARIABLE>", "</IMPROVED_VARIABLE>"

GRADIENT_SYSTEM = (
    "You are the feedback step of an optimization system built from language-model calls and "
    "functions. You are shown one variable of that system, how it was used, and what came out. "
    "Your job is criticism: say precisely what about the variable caused problems in the "
    "output and how it should change. Be concrete and brief. Do not write the new version "
    "yourself, and do not praise what already works."
)

GRADIENT_SYSTEM_SMALL = (
    "You give short, concrete feedback on how to improve a text. Do not rewrite it."
)

HINT_RULE = (
    " The person who wrote the variable is learning: point at what is wrong and why, as a "
    "hint. Never write corrected code, a corrected answer or a rewritten version, not even "
    "in part."
)


# `tg-magic feedback --rubric FILE`: the teacher's rubric becomes a judge's instruction.
RUBRIC_INSTRUCTION = (
    "You grade a student's answer against the teacher's rubric below. Say which points of the "
    "rubric the answer meets and which it misses, briefly. Do not write a model answer. End "
    "with a last line of the form 'Score: N/10' (10: the answer meets the whole rubric)."
)


# The classroom's second leak layer: the model itself checks a hint against the teacher's
# reference (solution or tests) before a student sees it.
LEAK_CHECK_SYSTEM = (
    "You check a hint written for a student before the student sees it. The student must still "
    "do the thinking: a hint may say what is wrong and why, and name the idea to look up; it "
    "must not hand over the answer in any form (code in any language, a formula, an expression "
    "to use, a diff, a table of values to copy, or a recipe of steps that spells the solution "
    "out). Question: does this hint let the student write the answer without thinking? Reply "
    "with one verdict on the first line: 'VERDICT: KEEP' when it does not; 'VERDICT: REWRITE' "
    "when it gives too much but a fair hint can be said, followed by that shorter hint (words "
    "only, no code) between <HINT> and </HINT>; 'VERDICT: WITHHOLD' when nothing useful can be "
    "said without giving the answer away."
)


def leak_check_prompt(hint: str, answer: str, reference: str) -> str:
    """The student's answer, the teacher's reference and the hint to judge."""
    return (
        f"The student's answer:\n{_block('STUDENT_ANSWER', answer)}\n\n"
        f"The teacher's reference (never shown to the student):\n"
        f"{_block('REFERENCE', reference)}\n\n"
        f"The hint to check:\n{_block('HINT', hint)}"
    )


def parse_leak_check(reply: str) -> tuple[str, str]:
    """(verdict, rewritten hint): KEEP, REWRITE with its hint, or WITHHOLD (also for a reply
    that gives no readable verdict: an unchecked hint is not shown)."""
    found = re.search(r"VERDICT:\s*(KEEP|REWRITE|WITHHOLD)", reply, re.IGNORECASE)
    verdict = found.group(1).upper() if found else "WITHHOLD"
    if verdict != "REWRITE":
        return verdict, ""
    rewritten = re.search(r"<HINT>(.*?)</HINT>", reply, re.DOTALL)
    if rewritten is None or not rewritten.group(1).strip():
        return "WITHHOLD", ""
    return "REWRITE", rewritten.group(1).strip()


def rubric_instruction(rubric: str) -> str:
    """The judge's system prompt for a rubric."""
    return f"{RUBRIC_INSTRUCTION}\n\n{_block('RUBRIC', rubric.strip())}"


def _block(tag: str, text: str) -> str:
    return f"<{tag}>\n{text}\n</{tag}>"


def gradient_prompt(
    *,
    role: str,
    value: str,
    call: str,
    output_role: str,
    output: str,
    feedback: str,
    small: bool = False,
) -> str:
    """Ask how `value` (with role `role`) should change, given what its call produced.

    `call` describes the call that used the variable (its other inputs included); `feedback` is
    the criticism the output received, or "" when the output is itself the objective (a loss).
    """
    if small:
        goal = (
            f"The result was judged:\n{feedback}"
            if feedback
            else f"The result is the goal: {output}"
        )
        return (
            f"Text ({role}):\n{value}\n\n{call}\nResult ({output_role}):\n{output}\n\n{goal}\n\n"
            f"In two or three sentences: how should the {role} change?"
        )
    if feedback:
        objective = (
            f"The {output_role} received this feedback:\n{_block('OUTPUT_FEEDBACK', feedback)}\n"
            f"Explain how the {role} should change so that this feedback is addressed."
        )
    else:
        objective = (
            f"The {output_role} is itself the objective of the optimization (an evaluation). "
            f"Explain how the {role} should change to do better on it."
        )
    return (
        f"The variable to give feedback on is the {role}:\n{_block('VARIABLE', value)}\n\n"
        f"It was used in this call:\n{_block('CALL', call)}\n\n"
        f"The call produced the {output_role}:\n{_block('OUTPUT', output)}\n\n{objective}"
    )


def llm_call_description(system: str | None, prompt: str) -> str:
    """How an LLM call is shown to the gradient model."""
    parts = [_block("SYSTEM_PROMPT", system)] if system else []
    parts.append(_block("INPUT", prompt))
    return "A language model was called with:\n" + "\n".join(parts)


def function_call_description(purpose: str, inputs: dict[str, str]) -> str:
    """How a deterministic function (a metric, a test run) is shown to the gradient model."""
    shown = "\n".join(_block(name.upper(), value) for name, value in inputs.items())
    return f"A function was applied. Its purpose: {purpose}\nIts inputs:\n{shown}"


OPTIMIZER_SYSTEM = (
    "You improve one variable of a system built from language-model calls and functions, "
    "using the feedback it received. Keep what works, change what the feedback criticises, "
    "and keep the variable's kind and format (a prompt stays a prompt, code stays runnable "
    f"code in the same language). Reply with the complete new value between {OPEN} and "
    f"{CLOSE}; text outside the tags is ignored."
)

OPTIMIZER_SYSTEM_SMALL = (
    f"You rewrite a text to address feedback. Reply with the new text between {OPEN} and {CLOSE}."
)


def update_prompt(
    *,
    role: str,
    value: str,
    feedback: list[tuple[str, str]],
    past_values: list[str],
    constraints: list[str],
    examples: list[str],
    small: bool = False,
) -> str:
    """Ask for the new value of a variable given its gradients (feedback, with the output each
    one was about), its past values (momentum), constraints and in-context examples."""
    if small:
        notes = "\n".join(f"- {text}" for text, _ in feedback)
        rules = "".join(f"\nRule: {c}" for c in constraints)
        return (
            f"Text ({role}):\n{value}\n\nFeedback:\n{notes}{rules}\n\n"
            f"Write the improved text between {OPEN} and {CLOSE}."
        )
    shown = []
    for text, about in feedback:
        context = f"(about the output: {about})\n" if about else ""
        shown.append(_block("FEEDBACK", context + text))
    parts = [
        f"The variable is the {role}:\n{_block('VARIABLE', value)}",
        "It received this feedback:\n" + "\n".join(shown),
    ]
    if past_values:
        parts.append(
            "Earlier values of the variable, oldest first; do not go back to what did not work:\n"
            + "\n".join(_block("PAST_VALUE", v) for v in past_values)
        )
    if constraints:
        parts.append(
            "The new value must satisfy these constraints:\n"
            + "\n".join(f"- {c}" for c in constraints)
        )
    if examples:
        parts.append(
            "Examples of good values for this kind of variable:\n"
            + "\n".join(_block("EXAMPLE", e) for e in examples)
        )
    parts.append(f"Write the complete improved {role} between {OPEN} and {CLOSE}.")
    return "\n\n".join(parts)


def parse_update(reply: str) -> str | None:
    """The new value from an optimizer reply, or None when the tags are missing."""
    start = reply.find(OPEN)
    end = reply.find(CLOSE, start + len(OPEN)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    value = reply[start + len(OPEN) : end].strip("\n")
    fenced = value.strip()
    if fenced.startswith("```") and fenced.endswith("```") and fenced.count("```") == 2:
        value = fenced[3:-3].split("\n", 1)[1] if "\n" in fenced else ""  # drop ```lang
    return value if value.strip() else None


def evaluation_prompt(fields: dict[str, str]) -> str:
    """The user turn of a multi-field evaluation (question, answer, reference...)."""
    return "\n\n".join(
        f"{name}:\n{_block(name.upper().replace(' ', '_'), v)}" for name, v in fields.items()
    )


# Constraints given to the optimizer for each kind of notebook variable.
KIND_CONSTRAINTS: dict[str, list[str]] = {
    "code": [
        "The value is Python source code: return the complete code, runnable as it is, defining "
        "the same functions and classes with the same names and signatures.",
        "No Markdown fences, no explanations outside the code; comments are fine.",
    ],
    "prompt": ["The value is a prompt for a language model: keep it a prompt, not an answer."],
    "text": [],
}
