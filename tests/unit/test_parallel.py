"""execute_parallel modes."""

from __future__ import annotations

import asyncio
import gc

import pytest

from streamline_core import Settled, ValidationError, execute_parallel


async def value(v: int, delay: float = 0) -> int:
    for _ in range(int(delay * 10)):
        await asyncio.sleep(0)
    return v


async def fail(msg: str, delay: float = 0) -> int:
    for _ in range(int(delay * 10)):
        await asyncio.sleep(0)
    raise RuntimeError(msg)


async def test_all_returns_every_result_in_order() -> None:
    assert await execute_parallel([lambda: value(1, 0.5), lambda: value(2), value(3)]) == [1, 2, 3]


async def test_all_raises_the_first_failure_and_cancels_the_rest() -> None:
    cancelled = asyncio.Event()

    async def slow() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    with pytest.raises(RuntimeError, match="boom"):
        await execute_parallel([slow, lambda: fail("boom")])
    assert cancelled.is_set()


async def test_race_takes_the_first_to_finish() -> None:
    assert await execute_parallel([lambda: value(1, 1), lambda: value(2)], mode="race") == 2
    with pytest.raises(RuntimeError, match="fast"):
        await execute_parallel([lambda: value(1, 1), lambda: fail("fast")], mode="race")


async def test_any_takes_the_first_success() -> None:
    assert await execute_parallel([lambda: fail("a"), lambda: value(7, 0.3)], mode="any") == 7
    with pytest.raises(ExceptionGroup) as group:
        await execute_parallel([lambda: fail("a"), lambda: fail("b")], mode="any")
    assert sorted(str(e) for e in group.value.exceptions) == ["a", "b"]


async def test_all_settled_never_raises() -> None:
    out = await execute_parallel([lambda: value(1), lambda: fail("x")], mode="all_settled")
    assert out[0] == Settled("fulfilled", value=1)
    assert out[1].status == "rejected"
    assert isinstance(out[1].error, RuntimeError)


async def test_concurrency_limit() -> None:
    running = 0
    peak = 0

    async def task() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):
            await asyncio.sleep(0)
        running -= 1

    await execute_parallel([task for _ in range(10)], concurrency=3)
    assert peak == 3


async def test_bad_arguments() -> None:
    with pytest.raises(ValidationError):
        await execute_parallel([], mode="race")
    with pytest.raises(ValidationError):
        await execute_parallel([lambda: value(1)], mode="bogus")  # type: ignore[arg-type]
    assert await execute_parallel([]) == []


async def test_race_between_tasks_ending_together_goes_to_the_first_and_settles_the_rest() -> None:
    async def down() -> None:
        raise ConnectionError("down")

    async def up() -> str:
        return "up"

    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    # Both end in the same loop iteration: input order decides, every time.
    for _ in range(20):
        assert await execute_parallel([up, down], mode="race") == "up"
        with pytest.raises(ConnectionError):
            await execute_parallel([down, up], mode="race")
    gc.collect()
    await asyncio.sleep(0)
    assert unretrieved == []
