"""Worker processes end with the process that started them, however it ends (signal, kill, crash).

A pool worker whose parent is killed is re-parented to init and would compute
on, then block forever on a pipe nobody reads. Each worker therefore asks
Linux to kill it when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``,
through ctypes), and everywhere also watches its parent from a daemon thread:
once its parent process id changes (the parent is gone) or the process that
submitted the work is gone, it exits at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 0.5  # how often the watchdog looks at the parent


def _set_parent_death_signal() -> bool:
    """Linux: have the kernel send SIGKILL to this process when its parent exits. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _watch(parent: int, submitter: int) -> None:
    while True:
        if os.getppid() != parent or _gone(submitter):
            os._exit(1)  # no cleanup: the work is orphaned and its results have nowhere to go
        time.sleep(WATCH_SECONDS)


def die_with_parent(submitter: int) -> None:
    """Worker initializer: end this process when its parent (or ``submitter``, the process that
    submits the work, which is the parent unless a fork server stands between) ends."""
    parent = os.getppid()
    _set_parent_death_signal()
    if (parent != submitter and _gone(submitter)) or parent == 1:
        os._exit(1)  # the parent died before the death signal was armed
    threading.Thread(target=_watch, args=(parent, submitter), name="llcbench-parent-watch", daemon=True).start()
