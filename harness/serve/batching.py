"""Gathers concurrent chat requests into one backend.generate call.

The in-process model is much faster on a batch than on requests one by one, and the
HTTP server handles each connection on its own thread; the batcher joins what arrives
within a few milliseconds so that concurrency on the wire becomes batching on the model.
A per-backend lock keeps two servers that share a model from running it concurrently.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import weakref
from typing import Optional

from harness.backends.base import Backend, error_text
from harness.core import GenerationRequest, GenerationResult
from harness.serve.limits import REQUEST_TIMEOUT_S


_BACKEND_LOCKS: "weakref.WeakKeyDictionary[Backend, threading.Lock]" = weakref.WeakKeyDictionary()
_BACKEND_LOCKS_GUARD = threading.Lock()


def _backend_lock(backend: Backend) -> threading.Lock:
    """One lock per backend object, so servers sharing a model never run it concurrently."""
    with _BACKEND_LOCKS_GUARD:
        lock = _BACKEND_LOCKS.get(backend)
        if lock is None:
            lock = _BACKEND_LOCKS[backend] = threading.Lock()
        return lock


class _Pending:
    __slots__ = ("request", "image", "image_key", "result", "done")

    def __init__(self, request: GenerationRequest, image, image_key: Optional[str]):
        self.request, self.image, self.image_key = request, image, image_key
        self.result: Optional[GenerationResult] = None
        self.done = threading.Event()


class _Batcher:
    """Gathers requests that arrive within `window_s` into one backend.generate call."""

    def __init__(self, backend: Backend, *, max_batch: int, window_s: float):
        self.backend = backend
        self.max_batch = max_batch
        self.window_s = window_s
        self.batch_sizes: list[int] = []
        self._queue: "queue.Queue[_Pending]" = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medvlm-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, image, image_key: Optional[str]) -> GenerationResult:
        item = _Pending(request, image, image_key)
        self._queue.put(item)
        if not item.done.wait(REQUEST_TIMEOUT_S):
            return GenerationResult(text=None, error=f"TimeoutError: no answer within {REQUEST_TIMEOUT_S:g} s")
        return item.result  # type: ignore[return-value]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            self._run(batch)
        while True:  # answer whatever is still queued, so no handler waits forever
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            item.result = GenerationResult(text=None, error="server stopping")
            item.done.set()

    def _run(self, batch: list[_Pending]) -> None:
        images: dict = {}
        reqs = []
        for item in batch:
            if item.image is not None:
                images[item.image_key] = item.image
            reqs.append(dataclasses.replace(item.request, image_key=item.image_key if item.image is not None else None))
        self.batch_sizes.append(len(batch))
        try:
            with _backend_lock(self.backend):
                results = self.backend.generate(reqs, images)
            if len(results) != len(reqs):
                raise RuntimeError(f"backend returned {len(results)} results for {len(reqs)} requests")
        except Exception as exc:  # HarnessError too: the client gets a 500, the server lives on
            results = [GenerationResult(text=None, error=error_text(exc)) for _ in reqs]
        for item, res in zip(batch, results):
            item.result = res
            item.done.set()
