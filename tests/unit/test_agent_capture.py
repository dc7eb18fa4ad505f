"""Output capture: the capped buffer, and the fd-level pump that brings JVM and subprocess output in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sparkplane.agent.capture import CappedText, FdPump


def test_pump_copies_everything_and_captures_only_while_a_target_is_set(tmp_path: Path) -> None:
    log = tmp_path / "driver.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    pump = FdPump(fd)
    try:
        os.write(fd, b"before\n")
        buffer = CappedText(100)
        pump.set_target(buffer)
        os.write(fd, "during \u00e9\n".encode())
        pump.set_target(None)
        os.write(fd, b"after\n")
        pump.flush()
    finally:
        pump.close()
        os.close(fd)
    assert buffer.value() == "during \u00e9\n"
    assert log.read_text() == "before\nduring \u00e9\nafter\n"  # the flush markers never reach the log


class _SlowText(CappedText):
    """A buffer slow to take text, as one is when the pump thread loses the CPU between two steps."""

    def write(self, text: str) -> int:
        time.sleep(0.2)
        return super().write(text)


def test_a_flush_returns_only_once_the_text_before_it_is_in_the_buffer(tmp_path: Path) -> None:
    """The end of a statement reads its buffer right after the last flush: nothing may still be on its way."""
    fd = os.open(tmp_path / "driver.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    pump = FdPump(fd)
    try:
        buffer = _SlowText(100)
        pump.set_target(buffer)
        os.write(fd, b"busy\n")
        time.sleep(0.1)  # the pump is in the slow write now, so the text and the flush marker arrive in one read
        os.write(fd, b"from the jvm\n")
        pump.flush()
        assert buffer.value() == "busy\nfrom the jvm\n"
    finally:
        pump.close()
        os.close(fd)


def test_statement_output_includes_subprocesses_through_fd_1() -> None:
    """In a child process, as in the agent: fd 1 goes through the pump, and a shell's echo is captured."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from sparkplane.agent.capture import FdPump, OutputCapture
        from sparkplane.agent.runner import Runner
        pump = FdPump(1)
        runner = Runner({}, capture=OutputCapture(pump))
        output = runner.run("import os\\nprint('py')\\nos.system('echo from-shell')\\n'done'", "pyspark").output
        pump.close()
        sys.stderr.write(json.dumps(output))
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    output = json.loads(child.stderr)
    assert output["data"]["text/plain"] == "py\nfrom-shell\n'done'"
    assert child.stdout == "from-shell\n"  # the driver log still gets it
