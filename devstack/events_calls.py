"""The local stack's EventBridge: moto's, with each JSONPath of a target's input parsed once.

moto builds the input of every target it delivers an event to from JSONPaths (the rule's input
transformer, or its own default of seven paths), and parses each path again for every event:
jsonpath-ng builds a new parser (its lexer and grammar tables) per parse. That made a PutEvents
of one cancel event cost 15 ms of the one process that serves every queue, table and state
machine of the stack. Here a path is parsed once and its parsed form reused: a search never
changes a parsed JSONPath, so events find the same values as before.
"""

from __future__ import annotations

import functools

import jsonpath_ng.ext
from jsonpath_ng.ext import parser


def parse_each_path_once() -> None:
    """Keep jsonpath-ng's parses for reuse, in this process, before moto's server starts. moto
    imports `parse` from `jsonpath_ng.ext` when it delivers an event, so it finds this one."""
    if jsonpath_ng.ext.parse is parser.parse:  # type: ignore[attr-defined]
        jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(parser.parse)  # type: ignore[attr-defined]
