"""The live processes of this machine, read from /proc: what a test checks a command left behind."""

from __future__ import annotations

from pathlib import Path


def live_processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process that is not a zombie."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()  # state, ppid, ...
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if stat[0] != "Z":
                found[int(proc.name)] = (int(stat[1]), command)
    return found


def processes_naming(marker: str) -> list[int]:
    """Pids of live processes whose command line holds `marker` (a unique port or folder)."""
    return [pid for pid, (_, command) in live_processes().items() if marker in command]


def descendants(pid: int) -> dict[int, str]:
    """Live descendants of `pid`: pid -> command line."""
    processes = live_processes()
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (its_parent, command) in processes.items():
            if its_parent == parent and child not in found:
                found[child] = command
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    return pid in live_processes()
