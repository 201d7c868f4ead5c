"""Python source generation helpers: a line buffer and a shared global namespace.

The whole program is compiled at load time into Python functions (one compile()
per generated module), so per-packet work is plain bytecode on a list of ints.
"""
from __future__ import annotations

import itertools
import linecache
from typing import Any, Callable


class Code:
    """Indented source lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    def extend(self, lines: list[str]) -> None:
        for line in lines:
            self(line)

    def indent(self) -> "_Indent":
        return _Indent(self)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Indent:
    def __init__(self, code: Code) -> None:
        self.code = code

    def __enter__(self) -> None:
        self.code.level += 1

    def __exit__(self, *exc: object) -> None:
        self.code.level -= 1


class Namespace:
    """Globals shared by all generated functions of one loaded program."""

    _serial = itertools.count()

    def __init__(self) -> None:
        self.g: dict[str, Any] = {"__builtins__": __builtins__}
        self._n = itertools.count()
        self._ids: dict[int, str] = {}

    def add(self, obj: Any, prefix: str = "o") -> str:
        """Bind obj to a fresh global name (same object -> same name)."""
        key = id(obj)
        if key in self._ids and self.g.get(self._ids[key]) is obj:
            return self._ids[key]
        name = f"{prefix}_{next(self._n)}"
        self.g[name] = obj
        self._ids[key] = name
        return name

    def set(self, name: str, obj: Any) -> str:
        self.g[name] = obj
        return name

    def fresh(self, prefix: str) -> str:
        return f"{prefix}_{next(self._n)}"

    def run(self, source: str, label: str) -> None:
        """Compile and execute generated source into the namespace.

        The source is registered with linecache so tracebacks and cProfile show it.
        """
        filename = f"<softswitch-{label}-{next(self._serial)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.g)  # noqa: S102 - our own generated code

    def get(self, name: str) -> Callable[..., Any]:
        return self.g[name]


def function_nodes(succ: dict[str, list[str | None]], init: str | None,
                   inline_max: int = 10) -> set[str]:
    """Which nodes of a control or parser graph get a function of their own.

    A node reached from one place is always inlined there. A node reached from several
    places is inlined at each of them too (duplicating its code) when it is not on a
    cycle and the code it drags along is at most `inline_max` nodes: that removes a call
    per node on common paths without letting code size explode. The rest, and the
    entry node, become functions.
    """
    sites: dict[str, int] = {n: 0 for n in succ}
    for n, targets in succ.items():
        for t in targets:
            if t is not None and t in sites:
                sites[t] += 1
    order: list[str] = []  # post-order: successors before the node
    state: dict[str, int] = {}
    on_cycle: set[str] = set()

    def visit(root: str) -> None:
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        path = [root]
        while stack:
            node, it = stack[-1]
            nxt = next((t for t in it if t is not None and t in succ), None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
            elif state.get(nxt) == 1:  # back edge: everything on the loop is a function
                on_cycle.update(path[path.index(nxt):])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(succ[nxt])))

    for n in succ:
        if n not in state:
            visit(n)
    funcs = {n for n, k in sites.items() if k != 1} | on_cycle
    if init is not None:
        funcs.add(init)
    size: dict[str, int] = {}
    for n in order:
        size[n] = 1 + sum(size.get(t, 1) for t in succ[n] if t is not None and t not in funcs)
        if n in funcs and n != init and n not in on_cycle and size[n] <= inline_max:
            funcs.discard(n)
    return funcs
