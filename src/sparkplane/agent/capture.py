"""What a statement prints, captured into its `text/plain` output.

Two levels, because PySpark output takes two roads:
- Python level: `sys.stdout` and `sys.stderr` are swapped for writers into the statement's buffer while it
  runs (what Livy's fake_shell does), so `print` and `df.show()` land in the output in order.
- File-descriptor level (optional, `FdPump`): the agent's fd 1 is a pipe that a pump thread copies to the real
  stdout (driver.log) and, while a statement runs, into its buffer. The JVM is started after the pump, inherits
  the pipe as its stdout, and so `System.out` of the JVM, `os.system("echo")` and C extensions reach the output
  too (spark-notes gotcha 8). fd 2 stays untouched: the JVM logs there, and its log lines are not statement
  output. The pump copies asynchronously, so fd-level text is whole and in order by itself, but may land after
  Python-level text printed later in the same statement; the runner syncs before the REPL value is printed and
  at the end of the statement, which covers the common "call something, show a value" cell.

Buffers are capped: a statement printing in a loop must not eat the driver's memory.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import io
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)

TRUNCATION_MARKER = "\n[output truncated: {} more characters]"
_READ_BYTES = 1 << 20  # more than a pipe holds, so one read takes every whole write the pipe has
# How long the end of a statement waits for the pump to copy what was written to fd 1 before it ended.
_FLUSH_SECONDS = 2.0
_MARKER = re.compile(rb"\x00sparkplane-flush-\d+\x00")


class CappedText:
    """Text kept up to `limit` characters; beyond that only counted, and reported by `value()`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0
        self._lock = threading.Lock()  # the pump thread and the statement's thread both write

    def write(self, text: str) -> int:
        with self._lock:
            room = self._limit - self._size
            if room > 0:
                kept = text[:room]
                self._parts.append(kept)
                self._size += len(kept)
            self._dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def value(self) -> str:
        with self._lock:
            text = "".join(self._parts)
            return text + TRUNCATION_MARKER.format(self._dropped) if self._dropped else text

    @property
    def truncated(self) -> bool:
        return self._dropped > 0


class _Writer(io.TextIOBase):
    """A text stream into a `CappedText`; bytes are decoded, as Livy's UnicodeDecodingStringIO does."""

    def __init__(self, target: CappedText, name: str) -> None:
        super().__init__()
        self._target = target
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def encoding(self) -> str:  # type: ignore[override]  # typeshed has an attribute; io has a read-only property
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str | bytes) -> int:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        return self._target.write(text)


class FdPump:
    """fd 1 through a pipe: copied to the original stdout, and into the statement's buffer while one runs."""

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        self._original = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self._read_end = read_end
        self._target: CappedText | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Lock()
        self._flushes: dict[bytes, threading.Event] = {}
        self._serial = 0
        self._thread = threading.Thread(target=self._pump, name="fd-pump", daemon=True)
        self._thread.start()

    def set_target(self, target: CappedText | None) -> None:
        """Capture into `target` from now on (None: stop); what was written before goes where it was going."""
        self.flush()
        with self._lock:
            self._target = target
            self._decoder.reset()

    def flush(self) -> None:
        """Wait until everything written to the fd so far has been copied (a marker makes the round trip)."""
        _flush_c_stdio()
        with self._lock:
            self._serial += 1
            marker = f"\x00sparkplane-flush-{self._serial}\x00".encode()
            done = self._flushes[marker] = threading.Event()
        try:
            os.write(self._fd, marker)  # one small write is atomic on a pipe, so the reader sees it whole
            if not done.wait(_FLUSH_SECONDS):
                logger.warning("output written to stdout did not come through the pump in %.1fs", _FLUSH_SECONDS)
        finally:  # a cancel may interrupt the wait
            with self._lock:
                self._flushes.pop(marker, None)

    def close(self) -> None:
        """Give the fd its original file back; the pump sees the end of the pipe and stops."""
        os.dup2(self._original, self._fd)
        self._thread.join(_FLUSH_SECONDS)
        os.close(self._original)

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self._read_end, _READ_BYTES)
            except InterruptedError:
                continue
            except OSError:
                return
            if not data:
                os.close(self._read_end)
                return
            try:
                self._copy(data)
            except Exception:  # the pump must never stop: writers to a full pipe would hang
                logger.exception("the stdout pump failed to copy a chunk")

    def _copy(self, data: bytes) -> None:
        with self._lock:
            flushed = [self._flushes.get(marker) for marker in _MARKER.findall(data)]
            data = _MARKER.sub(b"", data)  # also the markers of flushes nobody waits for any more
            target = self._target
            text = self._decoder.decode(data) if target is not None else ""
        if target is not None and text:
            target.write(text)
        while data:
            data = data[os.write(self._original, data) :]
        # Only now: a flush's waiter reads the buffer as soon as it wakes, so the text before the marker must be in.
        for event in flushed:
            if event is not None:
                event.set()


def _flush_c_stdio() -> None:
    """C code in this process (an extension's printf) buffers in stdio; push it into fd 1 first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


class OutputCapture:
    """Routes what a statement prints into its buffer for the duration of a `with capturing(...)`."""

    def __init__(self, pump: FdPump | None = None) -> None:
        self._pump = pump

    @contextlib.contextmanager
    def capturing(self, buffer: CappedText) -> Iterator[None]:
        saved = sys.stdout, sys.stderr
        sys.stdout = _Writer(buffer, "<stdout>")
        sys.stderr = _Writer(buffer, "<stderr>")
        if self._pump is not None:
            self._pump.set_target(buffer)
        try:
            yield
        finally:
            if self._pump is not None:
                self._pump.set_target(None)
            sys.stdout, sys.stderr = saved

    def sync(self) -> None:
        """Bring in what fd 1 got so far, so the text printed next comes after it (a REPL value, say)."""
        if self._pump is not None:
            self._pump.flush()
