"""Progress lines of the lab and the demo: `[who HH:MM:SS] what happens now`."""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

Say = Callable[[str], None]


def reporter(who: str, out: TextIO | None = None) -> Say:
    """A say(msg) that prints progress lines tagged with `who` ("lab", "demo")."""
    def say(msg: str) -> None:
        print(f"[{who} {time.strftime('%H:%M:%S')}] {msg}", file=out or sys.stdout, flush=True)
    return say
