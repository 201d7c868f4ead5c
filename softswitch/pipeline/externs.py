"""Stateful externs: indexed counter arrays and register arrays."""
from __future__ import annotations


class CounterArray:
    """An indirect counter: packets and bytes per cell (BMv2 counts both)."""

    __slots__ = ("name", "size", "pkts", "byts")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.pkts = [0] * size
        self.byts = [0] * size

    def _check(self, index: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"counter '{self.name}' has {self.size} cells, no index {index}")

    def read(self, index: int) -> tuple[int, int]:
        self._check(index)
        return self.pkts[index], self.byts[index]

    def write(self, index: int, packets: int, bytes_: int) -> None:
        self._check(index)
        self.pkts[index] = int(packets)
        self.byts[index] = int(bytes_)

    def reset(self) -> None:
        self.pkts[:] = [0] * self.size
        self.byts[:] = [0] * self.size


class RegisterArray:
    """A register array of unsigned cells of a fixed bit width.

    Out-of-range reads give 0 and writes are ignored (BMv2 release builds do not
    check; we choose not to corrupt memory or drop the packet).
    """

    __slots__ = ("name", "size", "width", "mask", "values", "oob")

    def __init__(self, name: str, size: int, width: int) -> None:
        self.name = name
        self.size = size
        self.width = width
        self.mask = (1 << width) - 1
        self.values = [0] * size
        self.oob = 0  # out-of-range accesses by the program

    def read(self, index: int) -> int:
        if 0 <= index < self.size:
            return self.values[index]
        self.oob += 1
        return 0

    def write(self, index: int, value: int) -> None:
        if 0 <= index < self.size:
            self.values[index] = value & self.mask
        else:
            self.oob += 1

    def checked_read(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(f"register '{self.name}' has {self.size} cells, no index {index}")
        return self.values[index]

    def checked_write(self, index: int, value: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(f"register '{self.name}' has {self.size} cells, no index {index}")
        if not 0 <= int(value) <= self.mask:
            raise ValueError(f"value {value} does not fit register '{self.name}' "
                             f"({self.width} bits)")
        self.values[index] = int(value)
