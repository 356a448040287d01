"""The local stack's background work: named daemon threads (pollers, schedules, the execution
watcher), a pool for asynchronous invocations, and one event that tells all of them to stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Background:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="async-invoke")

    def spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def submit(self, task: Callable[..., None], *args: Any) -> None:
        self._executor.submit(task, *args)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=3)
        self._executor.shutdown(wait=False, cancel_futures=True)
