"""Run a command locally and capture what the timeline records: its output (capped) and exit code."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

MAX_OUTPUT = 200_000  # characters: the API's limit for a command's recorded output
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Captured:
    output: str
    exit_code: int
    timed_out: bool = False


def clean(raw: bytes | str, total: int | None = None) -> str:
    """Text the API accepts: decoded, colour codes and control characters dropped, capped."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))
    size = total if total is not None else len(raw)
    note = f"\n[output truncated: {size} bytes in all]"
    if len(text) > MAX_OUTPUT or size > MAX_OUTPUT:
        text = text[: MAX_OUTPUT - len(note)] + note
    return text


def read_file(path: Path) -> str:
    """The first MAX_OUTPUT bytes of a saved output file, cleaned."""
    size = path.stat().st_size
    with path.open("rb") as f:
        return clean(f.read(MAX_OUTPUT), size)


def run_shell(command: str, timeout: float) -> Captured:
    """Run `command` in the shell, stdout and stderr interleaved; killed (with its children) on timeout."""
    proc = subprocess.Popen(
        command,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout kills what it started too
    )
    assert proc.stdout is not None
    stream = proc.stdout
    fd = stream.fileno()
    kept = bytearray()
    total = 0

    def drain() -> None:
        # Keep the first MAX_OUTPUT bytes but read everything, so a chatty command never blocks.
        nonlocal total
        while chunk := os.read(fd, 65_536):
            total += len(chunk)
            if len(kept) < MAX_OUTPUT:
                kept.extend(chunk[: MAX_OUTPUT - len(kept)])

    reader = threading.Thread(target=drain, name="tocsin-capture", daemon=True)
    reader.start()
    timed_out = False
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        code = proc.wait()
    finally:
        # A background child may hold the pipe open after the shell exits; do not wait for it forever.
        reader.join(timeout=2)
    if not reader.is_alive():
        stream.close()
    output = clean(bytes(kept), total)
    if timed_out:
        note = f"\n[killed after {timeout:g}s timeout]"
        output = output[: MAX_OUTPUT - len(note)] + note
    return Captured(output=output, exit_code=max(-255, min(255, code)), timed_out=timed_out)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
