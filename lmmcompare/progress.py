"""A minimal progress bar for long work (bootstrap, profiling, sampling, studies).

Writes to stderr only when enabled; no dependency beyond the standard library.
"""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    """``with Progress(total, "bootstrap") as bar: bar.update(k)``."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = max(int(total), 1), label, bool(enabled)
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._lock = threading.Lock()   # updated from worker threads too

    def update(self, n: int = 1):
        with self._lock:
            self.done += n
            self._show()

    def _show(self):
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            frac = self.done / self.total
            bar = "#" * int(30 * frac)
            elapsed = now - self.start
            left = f"~{elapsed / frac - elapsed:5.1f}s left" if frac > 0 else "time left unknown"
            self.stream.write(f"\r{self.label}: [{bar:<30}] {self.done}/{self.total} "
                              f"{elapsed:5.1f}s elapsed, {left}")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
        return False
