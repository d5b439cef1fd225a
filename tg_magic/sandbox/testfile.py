"""The test cell as a list of tests: each top-level assert, or each `test_*` function.

Runs inside the trusted runner (standard library only). Asserts are rewritten so that a failure
says what was compared ("left 2, right -2"), as pytest's rewriting does, without pytest.
"""

from __future__ import annotations

import ast
import linecache

TYPE_CHECKING = False  # typing and dataclasses are not imported here: every runner would pay
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FILENAME = "tests.py"
EXPLAIN = "_tg_explain"
_LEFT, _RIGHT, _VALUE = "_tg_left", "_tg_right", "_tg_value"
_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip


class Step:
    """One unit of the plan: a test (counted) or setup (counted only when it fails)."""

    def __init__(self, name: str, is_test: bool, run: Callable[[], Any]) -> None:
        self.name = name
        self.is_test = is_test
        self.run = run


def explain(message: Any, source: str, *values: Any) -> str:
    """The text of a failed assert: the user's message, the values it saw, its source."""
    shown = [_short(v) for v in values]
    seen = f"{shown[0]} {values[1]} {shown[2]}" if len(values) == 3 else shown[0]
    text = f"assert {seen}  (from: {source})"
    return f"{message}; {text}" if message is not None else text


def remember(text: str) -> None:
    """Let tracebacks show the test cell's lines."""
    linecache.cache[FILENAME] = (len(text), None, text.splitlines(True), FILENAME)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:150] + "...(cut)"


class _Rewrite(ast.NodeTransformer):
    """`assert a == b, m` -> evaluate a and b once, raise AssertionError(explain(...))."""

    def __init__(self, text: str) -> None:
        self.text = text

    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        source = ast.get_source_segment(self.text, node.test) or ast.unparse(node.test)
        source = " ".join(source.split())[:200]
        msg = node.msg or ast.Constant(None)
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPS:
            assigns = [_assign(_LEFT, test.left), _assign(_RIGHT, test.comparators[0])]
            check: ast.expr = ast.Compare(_load(_LEFT), test.ops, [_load(_RIGHT)])
            op = ast.Constant(_OPS[type(test.ops[0])])
            values = [_load(_LEFT), op, _load(_RIGHT)]
        else:
            assigns = [_assign(_VALUE, test)]
            check = _load(_VALUE)
            values = [_load(_VALUE)]
        call = ast.Call(_load(EXPLAIN), [msg, ast.Constant(source), *values], [])
        error = ast.Call(_load("AssertionError"), [call], [])
        fail = ast.If(ast.UnaryOp(ast.Not(), check), [ast.Raise(error, None)], [])
        return [ast.copy_location(n, node) for n in (*assigns, fail)]


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign([ast.Name(name, ast.Store())], value, lineno=0)


def _load(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _compile(nodes: list[ast.stmt], text: str) -> Any:
    module = ast.Module(body=nodes, type_ignores=[])
    module = ast.fix_missing_locations(_Rewrite(text).visit(module))
    return compile(module, FILENAME, "exec", dont_inherit=True)


def _is_test_function(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _is_test_class(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.ClassDef)
        and node.name.startswith("Test")
        and any(_is_test_function(item) for item in node.body)
    )


def _has_assert(node: ast.stmt) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return False
    return any(isinstance(inner, ast.Assert) for inner in ast.walk(node))


def _label(node: ast.stmt, text: str) -> str:
    first = (ast.get_source_segment(text, node) or ast.unparse(node)).strip().splitlines()[0]
    return f"line {node.lineno}: {first[:70]}"


def plan(text: str, namespace: dict[str, Any]) -> list[Step]:
    """The steps of the cell, run in `namespace`; SyntaxError if the cell does not parse."""
    tree = ast.parse(text, FILENAME)
    remember(text)
    if any(_is_test_function(n) or _is_test_class(n) for n in tree.body):
        return _function_plan(tree, text, namespace)
    steps = []
    for node in tree.body:
        is_test = _has_assert(node)  # before _compile, which rewrites the asserts in place
        code = _compile([node], text)
        steps.append(Step(_label(node, text), is_test, _runner(code, namespace)))
    return steps


def _runner(code: Any, namespace: dict[str, Any]) -> Callable[[], Any]:
    return lambda: exec(code, namespace)


def _function_plan(tree: ast.Module, text: str, namespace: dict[str, Any]) -> list[Step]:
    """Module-level code runs first (setup); then each test function or test method."""
    steps = [Step("collecting the tests", False, _runner(_compile(tree.body, text), namespace))]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_test_function(node):
            steps.append(Step(node.name, True, _call(namespace, node.name, None)))
        elif isinstance(node, ast.ClassDef) and _is_test_class(node):
            methods = [
                i for i in node.body if isinstance(i, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            for item in methods:
                if _is_test_function(item):
                    label = f"{node.name}.{item.name}"
                    steps.append(Step(label, True, _call(namespace, node.name, item.name)))
    return steps


def _call(namespace: dict[str, Any], name: str, method: str | None) -> Callable[[], Any]:
    def run() -> Any:
        target = namespace[name]
        if method is not None:
            target = getattr(target(), method)
        needs = _required_parameters(target)
        if needs:
            raise TypeError(
                f"{name} takes parameters ({', '.join(needs)}); fixtures are not provided: "
                "write the test without parameters"
            )
        result = target()
        if hasattr(result, "__await__"):
            import asyncio

            asyncio.run(result)

    return run


_FUNCTION = type(lambda: None)


def _required_parameters(function: Any) -> list[str]:
    """The parameters a call without arguments would miss. A plain function is read from its
    code (inspect takes a runner's start 2 ms more); anything else is asked of inspect."""
    plain = type(function) is _FUNCTION
    if plain and not hasattr(function, "__wrapped__") and not hasattr(function, "__signature__"):
        code = function.__code__
        positional = code.co_varnames[: code.co_argcount]
        required = list(positional[: len(positional) - len(function.__defaults__ or ())])
        keywords = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        return required + [n for n in keywords if n not in (function.__kwdefaults__ or {})]
    import inspect

    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
