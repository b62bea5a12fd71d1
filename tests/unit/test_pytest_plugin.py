"""The shipped pytest plugin works in a user's project."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_fixtures_give_a_fake_clocked_engine(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        from streamline_core import RunStatus

        pytest_plugins = ["streamline_testing.pytest_plugin"]

        def test_sleeping_run(engine, fake_clock, memory_store):
            async def nap(ctx):
                await ctx.sleep(86400)

            async def main():
                async with engine:
                    wf = engine.workflow("nap", steps={"nap": nap, "done": lambda c: "ok"})
                    run = await wf.start()
                    await fake_clock.advance(86400)
                    done = await wf.wait_for(run.id, timeout=5)
                    assert done.status == RunStatus.DONE
                    assert len(memory_store) == 1

            asyncio.run(main())
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
