"""CloudWatch Logs filter patterns, the subset the runbook and the metric filters use, applied to log lines.

- A JSON pattern `{ $.field OP value }`, selectors joined by `&&` or `||` (no parentheses): `=`/`!=` with a
  "string" (`*` matches any run of characters) or a number, `<`, `<=`, `>`, `>=` with a number. As in
  CloudWatch, a number compares only with a JSON number (a `"429"` string never equals 429) and a string only
  with a JSON string; a line that is not JSON, or lacks the field, does not match.
- A term pattern: every term (a bare word or a "quoted phrase") must occur in the line, case-sensitively.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex

SELECTOR = re.compile(r'^\s*\$\.([\w.\[\]]+)\s*(=|!=|<=|>=|<|>)\s*(".*?"|-?\d+(?:\.\d+)?)\s*$')


def _field(document, path: str):
    value = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def _selector(document: dict, text: str) -> bool:
    match = SELECTOR.match(text)
    if not match:
        raise ValueError(f"unsupported selector: {text!r}")
    path, op, literal = match.groups()
    try:
        value = _field(document, path)
    except KeyError:
        return False
    if literal.startswith('"'):
        if op not in ("=", "!=") or not isinstance(value, str):
            return False
        equal = fnmatch.fnmatchcase(value, literal[1:-1].replace("[", "[[]"))
        return equal if op == "=" else not equal
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    number = float(literal)
    return {"=": value == number, "!=": value != number, "<": value < number, "<=": value <= number,
            ">": value > number, ">=": value >= number}[op]


def matches(pattern: str, line: str) -> bool:
    """Whether CloudWatch Logs would select `line` with `pattern`."""
    pattern = pattern.strip()
    if pattern.startswith("{"):
        if not pattern.endswith("}"):
            raise ValueError(f"unbalanced pattern: {pattern!r}")
        try:
            document = json.loads(line)
        except ValueError:
            return False
        if not isinstance(document, dict):
            return False
        body = pattern[1:-1]
        return any(all(_selector(document, part) for part in alternative.split("&&"))
                   for alternative in body.split("||"))
    return all(term in line for term in shlex.split(pattern))
