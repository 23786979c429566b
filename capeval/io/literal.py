"""A safe reader for Python literals of captions (``"['a cat', 'a dog']"``): never ``eval``.

VLMEvalKit stores each sample's reference captions as ``str(list)`` and reads them back with ``eval``;
lmms-eval writes ``str(target)``. Only string constants, lists and tuples of them are accepted: a call, a name,
an attribute, an operator or any other node is refused before anything is built, so nothing can run.
"""

from __future__ import annotations

import ast


class NotACaptionLiteral(ValueError):
    """The text is not a string literal or a list/tuple of string literals (the message says what it is)."""


_WHAT = {
    ast.Call: "a function call", ast.Name: "a name", ast.Attribute: "an attribute access",
    ast.BinOp: "an operator", ast.Subscript: "a subscript", ast.Lambda: "a lambda", ast.Dict: "a dict",
    ast.Set: "a set", ast.JoinedStr: "an f-string", ast.ListComp: "a comprehension",
}


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        return f"a {type(node.value).__name__} constant"
    return _WHAT.get(type(node), f"a {type(node).__name__} expression")


def parse_caption_literal(text: str) -> list[str]:
    """The captions in ``text``: a Python string literal or a list/tuple of string literals.

    Raises :class:`NotACaptionLiteral` for anything else, without evaluating it.

    Example:
        >>> parse_caption_literal("['A cat.', \\"A dog's bed.\\"]")
        ['A cat.', "A dog's bed."]
        >>> parse_caption_literal("__import__('os').system('true')")
        Traceback (most recent call last):
        ...
        capeval.io.literal.NotACaptionLiteral: a function call, not a list of strings
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte
        raise NotACaptionLiteral(f"not a Python literal ({getattr(exc, 'msg', exc)})") from None
    node = tree.body
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise NotACaptionLiteral(f"{_describe(node)}, not a list of strings")
    out = []
    for item in node.elts:
        if not (isinstance(item, ast.Constant) and isinstance(item.value, str)):
            raise NotACaptionLiteral(f"item {len(out)} is {_describe(item)}, not a string")
        out.append(item.value)
    return out
