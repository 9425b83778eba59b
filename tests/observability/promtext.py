"""A strict reader of the Prometheus text format (0.0.4), for the tests: every line must be a HELP, a
TYPE or a sample ``name{labels} value``, and every sample must belong to a family declared before it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})? (?P<value>\S+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
HELP = re.compile(rf"^# HELP (?P<name>{_NAME}) (?P<text>.*)$")
TYPE = re.compile(rf"^# TYPE (?P<name>{_NAME}) (?P<type>counter|gauge|histogram|summary|untyped)$")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}

Labels = frozenset[tuple[str, str]]


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def _value(raw: str) -> float:
    if raw in ("+Inf", "-Inf", "NaN"):
        return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}[raw]
    return float(raw)


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def parse(text: str) -> Exposition:
    assert text.endswith("\n"), "the exposition ends with a newline"
    out = Exposition()
    for number, line in enumerate(text.splitlines(), 1):
        if m := HELP.match(line):
            continue
        if m := TYPE.match(line):
            assert m["name"] not in out.types, f"line {number}: family {m['name']} declared twice"
            out.types[m["name"]] = m["type"]
            continue
        m = SAMPLE.match(line)
        assert m, f"line {number} is not a sample `name{{labels}} value`: {line!r}"
        name = m["name"]
        family = next(
            (
                f
                for f, t in out.types.items()
                if name == f or any(name == f + s for s in _SUFFIXES.get(t, ()))
            ),
            None,
        )
        assert family is not None, f"line {number}: sample {name} of no declared family"
        labels = frozenset((k, _unescape(v)) for k, v in _PAIR.findall(m["labels"] or ""))
        key = (name, labels)
        assert key not in out.samples, f"line {number}: duplicate sample {line!r}"
        out.samples[key] = _value(m["value"])
    return out
