"""The metric names a PromQL expression reads, to compare with what the processes expose.

`metric_names(expr)` returns the exact series names selected (`x_bucket` stays `x_bucket`:
scrapes hold the bucket series), never function or aggregation names, keywords, label names
(in `{...}` and in `by (...)`, `on (...)`, ...), numbers, durations, strings or Grafana
variables (`$__rate_interval`, `${datasource}`). A name given as a matcher,
`{__name__="x"}`, or quoted, `{"x"}`, counts too.

It is a tokenizer, not a parser: it assumes a valid expression and raises ValueError only for
what it cannot read at all (an unterminated string, brace or bracket, a stray character).
"""

import re

# Words that are never metric names where they stand (PromQL's keywords and set operators).
KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
# Aggregations may take their grouping first: `sum by (x) (...)`.
AGGREGATIONS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
# Modifiers followed by a list of label names in parentheses.
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+(?![A-Za-z0-9_:])")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|[A-Za-z0-9_]+)|\[\[[^\]]*\]\]")
_OPERATORS = "+-*/%^=!<>,@"
_MATCH_OPERATORS = ("=~", "!~", "!=", "=")


def _string_end(expr: str, start: int) -> int:
    """The index just after the string literal opening at `start` ('...', "..." or `...`)."""
    quote = expr[start]
    index = start + 1
    while index < len(expr):
        char = expr[index]
        if char == "\\" and quote != "`":
            index += 2
            continue
        if char == quote:
            return index + 1
        index += 1
    raise ValueError(f"unterminated string at {start} in {expr!r}")


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _skip_space(expr: str, index: int) -> int:
    while index < len(expr):
        if expr[index].isspace():
            index += 1
        elif expr[index] == "#":  # a comment, to the end of the line
            newline = expr.find("\n", index)
            index = len(expr) if newline < 0 else newline + 1
        else:
            break
    return index


def _closing(expr: str, start: int, opening: str, closing: str) -> int:
    """The index just after the `closing` that matches the `opening` at `start`, strings
    skipped."""
    depth = 0
    index = start
    while index < len(expr):
        char = expr[index]
        if char in "\"'`":
            index = _string_end(expr, index)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError(f"unterminated {opening!r} at {start} in {expr!r}")


def _names_in_matchers(body: str) -> set[str]:
    """The metric names inside `{...}`: `__name__="x"` and a bare quoted `"x"`."""
    names: set[str] = set()
    index = 0
    while index < len(body):
        index = _skip_space(body, index)
        if index >= len(body):
            break
        if body[index] == ",":
            index += 1
            continue
        # A label name, bare or quoted.
        if body[index] in "\"'`":
            end = _string_end(body, index)
            label = _unquote(body[index:end])
        else:
            match = _IDENTIFIER.match(body, index)
            if match is None:
                raise ValueError(f"cannot read the matchers {{{body}}}")
            end, label = match.end(), match.group()
        index = _skip_space(body, end)
        operator = next((op for op in _MATCH_OPERATORS if body.startswith(op, index)), None)
        if operator is None:  # `{"metric.name"}`: a name alone is the metric's
            names.add(label)
            continue
        index = _skip_space(body, index + len(operator))
        if index >= len(body) or body[index] not in "\"'`":
            raise ValueError(f"a matcher without a string value in {{{body}}}")
        end = _string_end(body, index)
        if label == "__name__" and operator == "=":
            names.add(_unquote(body[index:end]))
        index = end
    return names


def metric_names(expr: str) -> set[str]:
    """The names of the metrics `expr` selects."""
    names: set[str] = set()
    index = 0
    while True:
        index = _skip_space(expr, index)
        if index >= len(expr):
            return names
        char = expr[index]
        if char in "\"'`":
            index = _string_end(expr, index)
        elif char == "{":
            end = _closing(expr, index, "{", "}")
            names |= _names_in_matchers(expr[index + 1 : end - 1])
            index = end
        elif char == "[":  # a range or subquery: durations and variables only
            index = _closing(expr, index, "[", "]")
        elif char in "()" or char in _OPERATORS:
            index += 1
        elif variable := _VARIABLE.match(expr, index):
            index = variable.end()
        elif duration := _DURATION.match(expr, index):
            index = duration.end()
        elif number := _NUMBER.match(expr, index):
            index = number.end()
        elif identifier := _IDENTIFIER.match(expr, index):
            word = identifier.group()
            keyword = word.lower()  # PromQL's keywords ignore case
            index = _skip_space(expr, identifier.end())
            following = _IDENTIFIER.match(expr, index)
            if keyword in LABEL_LISTS:
                if expr.startswith("(", index):  # label names, not metrics
                    index = _closing(expr, index, "(", ")")
            elif keyword in KEYWORDS or expr.startswith("(", index):
                pass  # a keyword, a function or an aggregation
            elif (
                keyword in AGGREGATIONS
                and following
                and following.group().lower()
                in (
                    "by",
                    "without",
                )
            ):
                pass  # `sum by (x) (...)`
            else:
                names.add(word)
        else:
            raise ValueError(f"unexpected {char!r} at {index} in {expr!r}")
