"""Metric names an expression of the shipped rules and dashboard uses (PromQL read just
far enough: strings, label matchers, ranges, grouping clauses and $variables removed; a
name followed by "(" is a function)."""
from __future__ import annotations

import re

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "offset", "bool", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group() in KEYWORDS:
            continue
        names.add(m.group())
    return names


def template_metric(query: str) -> set[str]:
    """label_values(METRIC{...}, label) -> the metric (Grafana's template query)."""
    m = re.match(r"\s*label_values\((.*),\s*\w+\s*\)\s*$", query)
    return metric_names(m.group(1)) if m else metric_names(query)
