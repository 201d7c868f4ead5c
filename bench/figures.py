"""What every benchmark ends with: its figures as JSON where run_all.py gathers them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_figures(path: str | Path, figures: dict[str, Any], say: bool = True) -> Path:
    """Write `figures` to `path` (folders made as needed) and, with `say`, print where
    (not when stdout carries the figures themselves as JSON)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    if say:
        print(f"wrote {out}")
    return out
