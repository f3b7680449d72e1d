"""Tools a policy may call in a multi-turn episode, and the call syntax.

A tool call follows GSM8K's calculator annotations (Cobbe et al. 2021): the model
writes `<<EXPRESSION=`, the environment appends the tool's answer and `>>`, and the
model continues:

    model: "The total is <<48/2="     env: "24>>"     model: " 24" EOS

A tool is a function `(expression: str) -> str`. Built in: `calculator` (exact
arithmetic on integers and decimals, no names, no calls) and `python` (one Python
expression evaluated in `sandbox.run_python`: a subprocess with time, CPU and memory
limits, no network, writes only in its temporary directory). Plug your own in as
`module:function` or `path/to/file.py:function`, as rewards are. A tool that raises
answers `error: ...` instead of stopping training: a malformed call is the policy's
mistake, and the episode goes on.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from fractions import Fraction

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.sandbox import python_tool
from rlfoundry.runtime.plugins import import_callable

Tool = Callable[[str], str]

CALL_OPEN, CALL_END, RESULT_END = "<<", "=", ">>"
_CALL = re.compile(r"<<([^<>=]*)=$")

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_DIGITS = 200  # results past this many digits are refused (2**10**9 would hang)


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > 64:
                raise ValueError("only small whole powers")
            if left == 0 and right < 0:
                raise ZeroDivisionError("0 to a negative power")
            return left ** int(right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ZeroDivisionError("division by zero")
        return _BINARY[type(node.op)](left, right)
    raise ValueError("only numbers, + - * / // % ** and parentheses")


def calculator(expression: str) -> str:
    """Exact arithmetic: `calculator("48/2") == "24"`, `"1/3*3" -> "1"`, `"7/2" -> "3.5"`.

    Numbers, + - * / // % ** (whole exponents up to 64) and parentheses; anything else
    (names, calls, attributes) raises ValueError. Non-terminating decimals are rounded
    to 6 places.
    """
    text = expression.strip().replace("^", "**").replace(",", "")
    if not text or len(text) > 200:
        raise ValueError("empty or too long")
    value = _eval(ast.parse(text, mode="eval"))
    if value.denominator == 1:
        out = str(value.numerator)
    else:
        out = f"{float(value):.6f}".rstrip("0").rstrip(".")
    if len(out) > MAX_DIGITS:
        raise ValueError("result too large")
    return out


TOOLS: dict[str, Tool] = {"calculator": calculator, "python": python_tool}


def load_tool(spec: str) -> Tool:
    """A built-in tool by name, or `module:function` / `file.py:function`; raises one
    sentence naming the cause and the fix."""
    if spec in TOOLS:
        return TOOLS[spec]
    if ":" not in spec:
        raise RLFoundryError(
            f"Tool '{spec}' is neither a built-in ({', '.join(TOOLS)}) nor written "
            "module:function (e.g. mypkg.tools:lookup or ./my_tools.py:lookup)."
        )
    return import_callable(spec, "Tool")


def pending_call(text: str) -> str | None:
    """The expression of a tool call that `text` ends with (`... <<EXPR=`), else None."""
    m = _CALL.search(text)
    return m.group(1) if m else None


def answer(tool: Tool, expression: str) -> str:
    """What the environment appends after a call: the tool's result (or `error: ...`
    when it raises) and `>>`."""
    try:
        result = str(tool(expression))
    except Exception as err:  # the policy's malformed call, not a bug: say so and go on
        result = f"error: {type(err).__name__}"
    return result + RESULT_END


def final_answer(completion: str) -> str:
    """The text after the last tool result (`>>`), where a tool-using episode answers."""
    return completion.rsplit(RESULT_END, 1)[-1].strip()


def tool_use(completions: list[str]) -> float:
    """Share of episodes that called a tool at least once (the `tool_use` metric)."""
    return sum(CALL_OPEN in c and RESULT_END in c for c in completions) / max(1, len(completions))
