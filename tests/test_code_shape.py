"""Code shape (issue 14): no module of causalsr/ over 400 lines, no function over 60 lines.

Parsed with `ast`, so a function's length runs from its `def` line to its last line (docstring included).
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "causalsr"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node.end_lineno - node.lineno + 1
            yield from _functions(node, f"{name}.")


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_over_the_line_limit():
    over = {str(p.relative_to(PACKAGE)): n for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them along their seams): {over}"


def test_no_function_over_the_line_limit():
    over = {}
    for p in _modules():
        rel = p.relative_to(PACKAGE).as_posix()
        for name, n in _functions(ast.parse(p.read_text(encoding="utf-8"))):
            if n > MAX_FUNCTION_LINES:
                over[f"{rel}::{name}"] = n
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"

