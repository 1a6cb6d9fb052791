"""Tokenizer and recursive-descent parser for SCIM filters (RFC 7644 §3.4.2.2).

Grammar (operators and keywords case-insensitive; `and` binds tighter than `or`):

    filter    = term *("or" term)
    term      = factor *("and" factor)
    factor    = "not" "(" filter ")" / "(" filter ")" / attrExp / valuePath
    attrExp   = attrPath "pr" / attrPath compareOp compValue
    valuePath = attrPath "[" filter "]" ["." subAttr ("pr" / compareOp compValue)]

The trailing `.subAttr ...` of a value path is Entra's extension. `and`/`or`
chains are parsed in loops, so only parentheses recurse, and their depth is capped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NoReturn

from .ast import And, AttrRef, Compare, FilterError, Node, Not, Or, Present, Value, ValuePath

MAX_LENGTH = 10_000
MAX_DEPTH = 50
COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_TEXT_OPS = frozenset({"co", "sw", "ew"})
_ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
_KEYWORDS = frozenset({"and", "or", "not"})
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}

_SPACE = re.compile(r"\s*")
_TOKEN = re.compile(
    r"""
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])
    | (?P<word>[A-Za-z$][\w:.$-]*)
    | (?P<punct>[()\[\].])
    """,
    re.VERBOSE,
)
_NAME = re.compile(r"\$?[A-Za-z][\w-]*")


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, word, one of ( ) [ ] . , or end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens; anything that is not a token is a syntax error."""
    tokens: list[Token] = []
    pos = _SPACE.match(text).end()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            what = "unterminated string" if text[pos] == '"' else f"unexpected {text[pos]!r}"
            raise FilterError(f"{what} at position {pos}")
        kind = match.lastgroup or ""
        tokens.append(Token(match[0] if kind == "punct" else kind, match[0], pos))
        pos = _SPACE.match(text, match.end()).end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def parse_filter(text: str) -> Node:
    """Parse a SCIM filter into its AST; raise FilterError on any syntax error."""
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise FilterError("empty filter")
    return _one_comparison(text) or _Parser(tokenize(text)).parse()


# `attrPath op "string"`, the filter IdPs send before nearly every write (userName eq
# "…"), as tokenize() would split it: a word, a word, a string, nothing else.
_ONE_COMPARISON = re.compile(r'\s*([A-Za-z$][\w:.$-]*)\s+([A-Za-z]+)\s*("(?:[^"\\]|\\.)*")\s*\Z')


def _one_comparison(text: str) -> Compare | None:
    """The Compare the parser would return for a filter of that shape, built without
    tokens; None for any other filter and for one the parser would refuse, which the
    parser then reads (and words its error). tests/unit/test_filter_parser.py holds the
    two equal."""
    match = _ONE_COMPARISON.match(text)
    if match is None:
        return None
    attr, op, literal = match.groups()
    op = op.lower()
    if attr.lower() in _KEYWORDS or op not in COMPARE_OPS:
        return None
    try:
        return Compare(_attr_ref(Token("word", attr, match.start(1))), op,
                       _string(Token("string", literal, match.start(3))))
    except FilterError:
        return None


class _Parser:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.in_brackets = False

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def parse(self) -> Node:
        node = self.filter()
        if self.current.kind != "end":
            self.fail("expected 'and', 'or' or the end of the filter")
        return node

    def filter(self) -> Node:
        node = self.term()
        while self.accept_word("or"):
            node = Or(node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.accept_word("and"):
            node = And(node, self.factor())
        return node

    def factor(self) -> Node:
        if self.accept_word("not"):
            if self.current.kind != "(":
                self.fail("'not' must be followed by '('")
            return Not(self.group())
        if self.current.kind == "(":
            return self.group()
        ref = self.attr_path()
        if self.current.kind == "[":
            return self.value_path(ref)
        op, value = self.operation()
        return Present(ref) if op == "pr" else Compare(ref, op, value)

    def group(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"parentheses are nested deeper than {MAX_DEPTH}")
        self.expect("(")
        node = self.filter()
        self.expect(")")
        self.depth -= 1
        return node

    def value_path(self, ref: AttrRef) -> ValuePath:
        if self.in_brackets:
            self.fail("value paths cannot be nested")
        if ref.sub:
            self.fail(f"{ref} has a sub-attribute; a value filter applies to an attribute")
        self.expect("[")
        self.in_brackets = True
        node = self.filter()
        self.expect("]")
        self.in_brackets = False
        if self.current.kind == "word" and self.current.text.lower() in COMPARE_OPS | {"pr"}:
            self.fail(f"{ref}[...] selects entries; compare a sub-attribute: {ref}[...].value")
        if self.current.kind != ".":
            return ValuePath(ref, node)
        self.index += 1
        sub = self.current
        if sub.kind != "word" or not _NAME.fullmatch(sub.text):
            self.fail("expected a sub-attribute after '].'")
        self.index += 1
        op, value = self.operation()
        return ValuePath(ref, node, (sub.text, op, value))

    def attr_path(self) -> AttrRef:
        token = self.current
        if token.kind != "word" or token.text.lower() in _KEYWORDS:
            self.fail("expected an attribute path")
        self.index += 1
        return _attr_ref(token)

    def operation(self) -> tuple[str, Value]:
        """An operator and its value; ("pr", None) for presence."""
        token = self.current
        if token.kind != "word":
            self.fail("expected an operator")
        self.index += 1
        op = token.text.lower()
        if op == "pr":
            return op, None
        if op not in COMPARE_OPS:
            raise FilterError(f"unknown operator {token.text!r} at position {token.pos}")
        value = self.comp_value()
        _check_operand(op, value, token)
        return op, value

    def comp_value(self) -> Value:
        token = self.current
        value: Value
        if token.kind == "string":
            value = _string(token)
        elif token.kind == "number":
            value = float(token.text) if re.search(r"[.eE]", token.text) else int(token.text)
        elif token.kind == "word" and token.text.lower() in _LITERALS:
            value = _LITERALS[token.text.lower()]
        else:
            self.fail("expected a value (a quoted string, a number, true, false or null)")
        self.index += 1
        return value

    def accept_word(self, word: str) -> bool:
        if self.current.kind == "word" and self.current.text.lower() == word:
            self.index += 1
            return True
        return False

    def expect(self, kind: str) -> Token:
        token = self.current
        if token.kind != kind:
            self.fail(f"expected {kind!r}")
        self.index += 1
        return token

    def fail(self, message: str) -> NoReturn:
        token = self.current
        got = "the end of the filter" if token.kind == "end" else repr(token.text)
        raise FilterError(f"{message}, got {got} at position {token.pos}")


def _attr_ref(token: Token) -> AttrRef:
    """Split `urn:...:2.0:User:name.familyName`: the attribute follows the URN's last colon."""
    urn, path = None, token.text
    if path.lower().startswith("urn:"):
        urn, _, path = path.rpartition(":")
    parts = path.split(".")
    if len(parts) > 2 or not all(_NAME.fullmatch(part) for part in parts):
        raise FilterError(f"invalid attribute path {token.text!r} at position {token.pos}")
    return AttrRef(urn, parts[0], parts[1] if len(parts) == 2 else None)


def _string(token: Token) -> str:
    """Decode a JSON string literal; NULs and lone surrogates would break the database."""
    try:
        # Without a backslash a JSON string is its text (strict=False takes control characters).
        value = json.loads(token.text, strict=False) if "\\" in token.text else token.text[1:-1]
        value.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise FilterError(f"invalid string {token.text} at position {token.pos}") from None
    if "\x00" in value:
        raise FilterError(f"strings must not contain NUL, at position {token.pos}")
    return value


def _check_operand(op: str, value: Value, token: Token) -> None:
    """RFC 7644: co/sw/ew take strings; ordering never applies to booleans or null."""
    if op in _TEXT_OPS and not isinstance(value, str):
        raise FilterError(f"'{op}' needs a string value, at position {token.pos}")
    if op in _ORDER_OPS and (value is None or isinstance(value, bool)):
        literal = json.dumps(value)
        raise FilterError(f"'{op}' cannot compare with {literal}, at position {token.pos}")
