"""Group commit: what is ready while a batch is being written goes together in the next.

A worker process runs up to ten runs at once (6, 3 and 1 by default); under a backlog their
starts and ends come close together, and one transaction each would make the database's
commits, not the runs, the limit. A lone item is written at once: batching costs it nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A batch this large is written before more are added: one transaction stays short.
MAX_BATCH = 200


class GroupCommit(Generic[Item, Result]):
    """Writes items in batches with `write`, which returns one result per item, in order."""

    def __init__(self, write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._write = write
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """Write `item` with whatever else is ready; its result, or the batch's error."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        return await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as error:  # noqa: BLE001 - each submitter gets the batch's error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
