"""One backoff for every loop that polls with a deadline for what sends no event."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

#: The one sleep of every backoff: a test may replace it to observe or pace the pauses.
sleep = time.sleep


class Backoff:
    """Pauses doubling from ``first`` up to ``most``, until ``timeout`` s or ``tries`` tries."""

    def __init__(
        self,
        first: float,
        *,
        most: float = math.inf,
        timeout: float = math.inf,
        tries: int | None = None,
    ) -> None:
        self.delay = first
        self.most = most
        self.deadline = time.monotonic() + timeout
        self.pauses_left = math.inf if tries is None else tries - 1

    def remaining(self) -> float:
        """Seconds left until the deadline (negative once it passed)."""
        return self.deadline - time.monotonic()

    def pause(self) -> bool:
        """Sleep before the next try, never past the deadline; False when no try is left."""
        left = self.remaining()
        if left <= 0 or self.pauses_left <= 0:
            return False
        self.pauses_left -= 1
        sleep(min(self.delay, left))
        self.delay = min(self.delay * 2, self.most)
        return True


def returned_within(seconds: float, work: Callable[[], object], name: str) -> bool:
    """Whether ``work`` returned within ``seconds``; if not, it goes on in a daemon thread
    (named ``name``), for a call that may never return (a browser's page that hangs)."""
    worker = threading.Thread(target=work, daemon=True, name=name)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive()
