"""The shipped pytest plugin works in a user's project."""

from __future__ import annotations

from pathlib import Path

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


def _readme_block(heading: str) -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split(f"## {heading}", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_test_runs_under_plain_pytest(pytester: pytest.Pytester) -> None:
    """The README's example, as a file of its own, with nothing but the plugin."""
    code = _readme_block("Testing your workflows")
    assert "wait_for(run.id, timeout=" in code
    pytester.makepyfile(test_readme=code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)


def test_async_tests_and_a_started_engine_out_of_the_box(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        pytest_plugins = ["streamline_testing.pytest_plugin"]

        async def test_async_runs(engine):
            await asyncio.sleep(0)
            assert not engine.started

        async def test_worker_engine_is_started(worker_engine):
            assert worker_engine.started
            wf = worker_engine.workflow("w", steps={"a": lambda ctx: 41, "b": lambda ctx: 42})
            run = await wf.start()
            assert (await wf.wait_for(run.id, timeout=5)).output == 42

        async def test_a_failing_async_test_fails():
            assert 1 == 2

        def test_worker_engine_in_a_sync_test_is_refused(worker_engine):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*worker_engine is started on the test's event loop*"])
    assert "not natively supported" not in result.stdout.str()
