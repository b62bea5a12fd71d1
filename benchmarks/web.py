"""The web layer: ``GET /api/runs`` over many runs in SQLite, and the overview page's weight.

``python -m benchmarks.web [--runs N] [--reps N]`` (or ``python -m benchmarks
--only web``). The store is filled through its own ``create``, many at a time
(group commit makes that quick), with runs shaped as a finished ten-step run
leaves them (mostly done; some failed, waiting, running), one second apart.
Requests go to ``create_app`` in-process through httpx's ASGI transport, so
the figures are the app and the store (routing, the keyset query, decoding
and validating 50 documents, the JSON answer), not a network.

Keyset paging means a page costs the same wherever it is: the first page, the
one in the middle and the last are asked with the cursor that leads to them
(the keyset of the run just before, as the previous page's ``next_cursor``
would be).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.figures import Figure, percentile, progress
from streamline_core import Engine
from streamline_core.run import RunStatus, StepState, StepStatus, WorkflowRun, encode_cursor
from streamline_core.store import Store

WORKFLOWS = ("orders", "refunds", "emails", "reports", "imports")
STEPS = 10
BATCH = 500
PAGE = 50
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def stored_run(i: int) -> WorkflowRun:
    """The ``i``-th seeded run: created ``i`` seconds after T0, shaped by its status."""
    created = T0 + timedelta(seconds=i)
    roll = i % 100
    status = (
        RunStatus.FAILED
        if roll < 5
        else RunStatus.WAITING
        if roll < 8
        else RunStatus.RUNNING
        if roll < 10
        else RunStatus.DONE
    )
    done_steps = STEPS if status == RunStatus.DONE else i % STEPS
    steps = []
    for k in range(STEPS):
        at = created + timedelta(milliseconds=20 * k)
        if k < done_steps:
            steps.append(
                StepState(
                    step_id=f"s{k}",
                    status=StepStatus.DONE,
                    attempts=1,
                    started_at=at,
                    ended_at=at + timedelta(milliseconds=15),
                    output={"step": k, "ok": True},
                )
            )
        else:
            steps.append(StepState(step_id=f"s{k}"))
    ended = created + timedelta(milliseconds=20 * STEPS) if status == RunStatus.DONE else None
    return WorkflowRun(
        id=f"run-{i:08d}",
        workflow_id=WORKFLOWS[i % len(WORKFLOWS)],
        status=status,
        current_step_id=None if status == RunStatus.DONE else f"s{done_steps}",
        steps=steps,
        input={"order": i, "customer": f"c{i % 977}"},
        output={"total": i % 1000} if status == RunStatus.DONE else None,
        meta={"source": "bench"},
        created_at=created,
        updated_at=ended or created,
        ended_at=ended,
    )


async def fill(store: Store, n: int) -> float:
    """Create runs ``0..n-1``, ``BATCH`` concurrent creates at a time; returns seconds taken."""
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        batch = [stored_run(i) for i in range(start, min(start + BATCH, n))]
        await asyncio.gather(*(store.create(run) for run in batch))
    return time.perf_counter() - t


def _cursor_before(position: int, n: int) -> str | None:
    """The cursor whose page starts at ``position`` in ``-created_at`` order (None: the first)."""
    if position == 0:
        return None
    i = n - position  # newest first: position 0 is run n-1, so the run before is n-position
    run = stored_run(i)
    return encode_cursor(run.created_at, run.id)


async def _latencies(
    http: httpx.AsyncClient, pages: dict[str, dict[str, Any]], reps: int
) -> dict[str, dict[str, Figure]]:
    """Per page: wall-clock ms and process CPU ms per request, p50 with p10 and p90.

    The pages are asked in turn, so load from other processes hits them
    alike; CPU time (every thread of this process: the app and the store's
    SQLite threads) is what a busy shared machine distorts least.
    """
    wall: dict[str, list[float]] = {name: [] for name in pages}
    cpu: dict[str, list[float]] = {name: [] for name in pages}
    for k in range(reps + 5):  # five rounds to warm the caches
        for name, params in pages.items():
            t, c = time.perf_counter(), time.process_time()
            answer = await http.get("/api/runs", params=params)
            took, spent = (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000
            assert answer.status_code == 200, answer.text[:200]
            assert len(answer.json()["items"]) == PAGE
            if k >= 5:
                wall[name].append(took)
                cpu[name].append(spent)
    return {name: {"wall": _pcts(wall[name]), "cpu": _pcts(cpu[name])} for name in pages}


def _pcts(values: list[float]) -> Figure:
    return Figure(percentile(values, 50), percentile(values, 10), percentile(values, 90), [])


async def _weight(http: httpx.AsyncClient) -> dict[str, Any]:
    """The overview as a browser fetches it: the HTML, then what it links (CSS, JS, images)."""
    t = time.perf_counter()
    page = await http.get("/")
    html_ms = (time.perf_counter() - t) * 1000
    assert page.status_code == 200
    assets = re.findall(r'<(?:link[^>]*href|script[^>]*src|img[^>]*src)="([^"]+)"', page.text)
    fetched = {"html": len(page.content)}
    gz = len(gzip.compress(page.content))
    for path in assets:
        if path.startswith("data:"):
            continue
        answer = await http.get(path)
        assert answer.status_code == 200, path
        kind = "css" if path.endswith(".css") else "js" if path.endswith(".js") else "other"
        fetched[kind] = fetched.get(kind, 0) + len(answer.content)
        gz += len(gzip.compress(answer.content))
    return {
        "requests": 1 + sum(1 for p in assets if not p.startswith("data:")),
        "bytes": fetched,
        "total_bytes": sum(fetched.values()),
        "gzip_bytes": gz,
        "overview_ms": html_ms,
    }


async def _measure(n: int, reps: int) -> dict[str, Any]:
    from streamline_sqlite import SQLiteStore
    from streamline_web import create_app

    with tempfile.TemporaryDirectory(prefix="streamline-web-") as tmp:
        store = SQLiteStore(str(Path(tmp) / "web.db"))
        try:
            fill_s = await fill(store, n)
            progress(f"web: {n:,} runs stored in {fill_s:.1f} s")
            engine = Engine(store, load_entry_point_plugins=False)  # a client, as the CLI's
            app = create_app(engine)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                positions = {"first": 0, "middle": (n // 2) // PAGE * PAGE, "last": n - PAGE}
                pages: dict[str, dict[str, Any]] = {}
                for name, position in positions.items():
                    cursor = _cursor_before(position, n)
                    pages[name] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
                out: dict[str, Any] = {"runs": n, "fill_s": fill_s, "page_size": PAGE}
                for name, figs in (await _latencies(http, pages, reps)).items():
                    out[f"{name}_ms"] = figs["wall"]
                    out[f"{name}_cpu_ms"] = figs["cpu"]
                # The last page really is the last: no cursor after it.
                last = await http.get(
                    "/api/runs", params={"limit": PAGE, "cursor": _cursor_before(n - PAGE, n)}
                )
                assert last.json()["next_cursor"] is None
                out["last_over_first"] = out["last_ms"].median / out["first_ms"].median
                out["last_over_first_cpu"] = out["last_cpu_ms"].median / out["first_cpu_ms"].median
                out["overview"] = await _weight(http)
                overview, overview_cpu = [], []
                for _ in range(max(reps // 10, 3)):
                    t, c = time.perf_counter(), time.process_time()
                    await http.get("/")
                    overview.append((time.perf_counter() - t) * 1000)
                    overview_cpu.append((time.process_time() - c) * 1000)
                out["overview"]["overview_ms"] = Figure.of(overview)
                out["overview"]["overview_cpu_ms"] = Figure.of(overview_cpu)
            return out
        finally:
            await store.close()


def measure(n: int = 100_000, reps: int = 100) -> dict[str, Any]:
    """``GET /api/runs`` p50 (ms) at the first, middle and last page; the overview's weight."""
    return asyncio.run(_measure(n, reps))


def render(res: dict[str, Any]) -> list[str]:
    """The section of the benchmark report."""
    w = res["overview"]
    b = w["bytes"]

    def cells(name: str) -> str:
        wall, cpu = res[f"{name}_ms"], res[f"{name}_cpu_ms"]
        return (
            f"| {name} | {wall.median:.2f} | {wall.lo:.2f} – {wall.hi:.2f} "
            f"| {cpu.median:.2f} | {cpu.lo:.2f} – {cpu.hi:.2f} |"
        )

    return [
        "",
        f"### Web: `GET /api/runs?limit={res['page_size']}` over {res['runs']:,} runs in SQLite "
        "(ms per request, in-process ASGI)",
        "",
        "| page | wall p50 | wall p10 – p90 | CPU p50 | CPU p10 – p90 |",
        "|---|---|---|---|---|",
        *(cells(name) for name in ("first", "middle", "last")),
        f"| last ÷ first | {res['last_over_first']:.2f}× | | {res['last_over_first_cpu']:.2f}× | |",
        "",
        f"Overview page: {w['requests']} requests, {w['total_bytes']:,} bytes "
        f"(HTML {b['html']:,}, CSS {b.get('css', 0):,}, JS {b.get('js', 0):,}; "
        f"{w['gzip_bytes']:,} gzipped), rendered in {w['overview_ms'].text('.1f', ' ms')}; "
        f"CPU {w['overview_cpu_ms'].text('.1f', ' ms')}.",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m benchmarks.web``: print the section."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the store")
    parser.add_argument("--reps", type=int, default=100, help="requests per page measured")
    args = parser.parse_args(argv)
    res = measure(args.runs, args.reps)
    print("\n".join(render(res)))
    return res


if __name__ == "__main__":
    main()
