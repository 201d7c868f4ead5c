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
