"""Writing a batch's outputs while the next batch runs.

On a CPU, encoding a small photo's mask and overlay as PNG takes a fair share of the time its forward pass
does, and Pillow encodes without holding the GIL: one writer thread overlaps the two
(docs/results/deployment.md). Results and failures come back to the caller's thread in the order the
writes were submitted, so failures are listed, and pixels counted, exactly as if written in place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path


class BackgroundWriter:
    """Runs writes (``() -> pixels written``) on one thread, oldest first."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unet-write")
        self.pending: deque[tuple[Path, Future[int]]] = deque()

    def submit(self, path: Path, write: Callable[[], int]) -> None:
        """Queue the write of ``path``'s outputs."""
        self.pending.append((path, self.executor.submit(write)))

    def done_beyond(self, keep: int) -> Iterator[tuple[Path, Future[int]]]:
        """Yields the oldest writes, each once done (``result()`` returns or raises in the caller's
        context), until at most ``keep`` are pending: what bounds the images waiting writes hold."""
        while len(self.pending) > keep:
            path, future = self.pending.popleft()
            future.exception()  # waits for it
            yield path, future

    def close(self) -> None:
        """Stop: writes not yet started are dropped, the one running completes (an atomic write leaves
        either the whole file or none)."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.pending.clear()
