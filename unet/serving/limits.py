"""The server's bounds: how large a request may be, how many predictions run at once, how long a
request waits for its turn and how long a prediction may take.

Bounded so that a burst of clients or one huge upload slows the server down but never takes its
memory: requests beyond ``max_concurrency`` wait for a slot up to ``queue_timeout_s``, then get 503.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from unet.utils.errors import ConfigError

Result = TypeVar("Result")
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class ServingLimits:
    """``configs/serve.yaml``'s bounds (the keys of the same names)."""

    max_upload_mb: float = 32.0
    max_concurrency: int = 2
    queue_timeout_s: float = 30.0
    predict_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for key in ("max_upload_mb", "max_concurrency", "queue_timeout_s", "predict_timeout_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}={getattr(self, key)}: expected a positive number")


class ServiceError(Exception):
    """A request the server answers with an HTTP error status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PredictionSlots:
    """At most ``max_concurrency`` predictions at once, each in a worker thread (the event loop stays
    free to answer ``/health`` and to refuse what waits too long)."""

    def __init__(self, limits: ServingLimits) -> None:
        self.limits = limits
        self.executor = ThreadPoolExecutor(limits.max_concurrency, thread_name_prefix="unet-serve")
        self._semaphore: asyncio.Semaphore | None = None

    async def run(self, work: Callable[[], Result], timeout_scale: int = 1) -> Result:
        """``work()`` in a free slot: 503 when none frees within ``queue_timeout_s``, 504 when it takes
        longer than ``predict_timeout_s`` × ``timeout_scale`` (its slot stays taken until it ends: a
        thread cannot be stopped, and the bound must hold)."""
        if self._semaphore is None:  # made in the server's event loop
            self._semaphore = asyncio.Semaphore(self.limits.max_concurrency)
        semaphore = self._semaphore
        try:
            await asyncio.wait_for(semaphore.acquire(), self.limits.queue_timeout_s)
        except TimeoutError:
            raise ServiceError(
                503, f"busy: {self.limits.max_concurrency} predictions running, none finished within "
                f"queue_timeout_s={self.limits.queue_timeout_s:g}; retry later"
            ) from None  # fmt: skip
        future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        future.add_done_callback(lambda _: semaphore.release())
        timeout = self.limits.predict_timeout_s * timeout_scale
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise ServiceError(
                504, f"the prediction took longer than {timeout:g} s (predict_timeout_s)"
            ) from None

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class UploadTooLarge(Exception):
    """A request body found larger than the limit while it streams in (no Content-Length told it before)."""


class LimitUploadSize:
    """ASGI middleware: a request body larger than ``max_bytes`` gets 413 before it is read into memory,
    (``max_upload_mb`` MiB) by its Content-Length or, when it streams without one, as soon as it passes the limit."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_upload_mb: float) -> None:
        self.app = app
        self.max_upload_mb = max_upload_mb
        self.max_bytes = int(max_upload_mb * 2**20)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        state = {"refused": False, "answered": False}

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                state["refused"] = True
                raise UploadTooLarge
            return message

        async def replacing_send(message: Message) -> None:
            # Whatever the app answers to the exception (400 for a body it could not parse, 500), the
            # client is told why: its upload is too large.
            if not state["refused"]:
                await send(message)
            elif message["type"] == "http.response.start" and not state["answered"]:
                state["answered"] = True
                await self._refuse(send)

        try:
            await self.app(scope, counting_receive, replacing_send)
        except UploadTooLarge:
            pass  # answered below when the app sent nothing
        if state["refused"] and not state["answered"]:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        message = f"the upload is larger than max_upload_mb={self.max_upload_mb:g}"
        await send_json(send, 413, {"error": message})


async def send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
