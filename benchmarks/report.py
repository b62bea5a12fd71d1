"""The markdown report of one ``python -m benchmarks`` invocation (from its results dict)."""

from __future__ import annotations

from typing import Any

from benchmarks import web
from benchmarks.figures import Figure

DASH = "—"


def _f(value: Any, spec: str = ",.0f", unit: str = "") -> str:
    if isinstance(value, Figure):
        return value.text(spec, unit)
    if isinstance(value, (int, float)):
        return f"{value:{spec}}{unit}"
    return DASH


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _header(meta: dict[str, Any]) -> list[str]:
    return [
        "## Streamline benchmarks",
        "",
        f"{meta['date']} · {meta['cpu']} · {meta['cores']} cores · Python {meta['python']} · "
        f"SQLite {meta['sqlite']} · commit {meta['commit']}",
        "",
        f"Workload: runs of a {meta['steps']}-step no-op workflow. Every figure is the median "
        f"of {meta['reps']} repetition(s), with (min – max) when there are several.",
    ]


def _limit_fraction(row: dict[str, Any], disk: dict[str, Any] | None) -> str:
    if not disk or row["store"] != "sqlite":
        return DASH
    rate = row["ours"]["steps_per_s"].median
    if row["in_flight"] <= 1:
        return f"{_pct(rate / disk['wal_single_commits_per_s'].median)} of 1-row commits"
    return f"{_pct(rate / disk['wal_batched_rows_per_s'].median)} of 50-row batches"


def _throughput(rows: list[dict[str, Any]], disk: dict[str, Any] | None) -> list[str]:
    out = [
        "",
        "### Throughput (steps/s)",
        "",
        "| scenario | Streamline steps/s | CPU µs/step | writes/step | DBOS steps/s "
        "| DBOS CPU µs/step | ours ÷ DBOS | share of the disk's limit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, theirs = row["ours"], row.get("dbos", {})
        out.append(
            f"| {row['scenario']} | {_f(ours['steps_per_s'])} | {_f(ours['cpu_us_per_step'])} "
            f"| {_f(ours['writes_per_step'], '.2f')} | {_f(theirs.get('steps_per_s'))} "
            f"| {_f(theirs.get('cpu_us_per_step'))} | {_f(row.get('ratio'), '.1f', '×')} "
            f"| {_limit_fraction(row, disk)} |"
        )
    out += _durability(rows)
    out += _time_split(rows)
    return out


def _time_split(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "",
        "Where a step's time goes (medians; CPU of the whole process, all threads; "
        "CPU ÷ wall above 1 means both cores were busy):",
        "",
        "| scenario | engine | wall µs/step | CPU µs/step | of which kernel | CPU ÷ wall |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for engine in ("ours", "dbos"):
            fig = row.get(engine)
            if not fig or "cpu_sys_us_per_step" not in fig:
                continue
            wall = 1e6 / fig["steps_per_s"].median
            cpu = fig["cpu_us_per_step"].median
            out.append(
                f"| {row['scenario']} | {'Streamline' if engine == 'ours' else 'DBOS'} "
                f"| {wall:,.0f} | {cpu:,.0f} | {fig['cpu_sys_us_per_step'].median:,.0f} "
                f"| {cpu / wall:.2f} |"
            )
    return out


def _durability(rows: list[dict[str, Any]]) -> list[str]:
    ours = next((r["ours"] for r in rows if r["store"] == "sqlite"), None)
    theirs = next((r["dbos"] for r in rows if "dbos" in r), None)
    out = [""]
    if ours is not None:
        out.append(
            f"Durability, Streamline: `SQLiteStore`, journal_mode={ours.get('journal_mode')}, "
            f"synchronous={ours.get('synchronous')} (read on the store's write connection)."
        )
    if theirs is not None:
        out.append(
            f"Durability, DBOS {theirs.get('dbos_version')}: default system database "
            f"`{theirs.get('system_database_url')}`, journal_mode={theirs.get('journal_mode')}, "
            f"synchronous={theirs.get('synchronous')} (read on DBOS's own pooled connection); "
            f"{_f(theirs.get('commits_per_step'), '.2f')} SQLAlchemy commits and "
            f"{_f(theirs.get('statements_per_step'), '.2f')} statements per step."
        )
    return out


def _disk(disk: dict[str, Any]) -> list[str]:
    single = disk["wal_single_commits_per_s"]
    return [
        "",
        "### The disk's limit (Python `sqlite3`, `BEGIN IMMEDIATE; UPDATE …; COMMIT`)",
        "",
        "| probe | rate |",
        "|---|---|",
        f"| WAL, synchronous=FULL, 1 row per commit | {_f(single)} commits/s "
        f"({1e6 / single.median:,.0f} µs each) |",
        f"| WAL, synchronous=FULL, 50 rows per commit "
        f"| {_f(disk['wal_batched_rows_per_s'])} rows/s |",
        f"| rollback journal (DBOS's default), synchronous=FULL, 1 row per commit "
        f"| {_f(disk['delete_journal_commits_per_s'])} commits/s |",
        "",
        "Share of the limit: a sequential step is one commit, so its ceiling is the 1-row "
        "commit rate; with 50 runs in flight and group commit the ceiling is the 50-row "
        "batched rate (one fsync per 50 transitions). steps/s ÷ ceiling.",
    ]


def _costs(writes: dict[str, Any] | None, sys: dict[str, Any] | None, wal: Any) -> list[str]:
    out = [
        "",
        "### Cost per step (sequential)",
        "",
        "| store | store writes | round trips | fsyncs | bytes written to disk | other |",
        "|---|---|---|---|---|---|",
    ]
    sys = sys or {}
    for store in ("memory", "sqlite", "mongo"):
        row = (writes or {}).get(store, {})
        traced = sys.get(f"{store}_sequential", {})
        calls = (row.get("writes_per_step") or 0) + (row.get("reads_per_step") or 0)
        trips, other = DASH, DASH
        if store == "memory":
            trips = "0 (in process)"
        elif store == "sqlite" and row:
            trips = f"{calls:.2f} transactions (inline when the writer thread is idle)"
            if wal:
                other = (
                    f"WAL {wal['frames_per_write']:.2f} frames = "
                    f"{wal['wal_bytes_per_write']:,.0f} B per write "
                    f"(run document {wal['doc_bytes']:,.0f} B of JSON)"
                )
        elif store == "mongo" and row:
            trips = _f(row.get("round_trips_per_step"), ".2f")
            other = f"{_f(row.get('bytes_sent_per_step'), ',.0f')} B of BSON sent (mongomock)"
        out.append(
            f"| {store} | {_f(row.get('writes_per_step'), '.2f')} | {trips} "
            f"| {_f(traced.get('fsyncs'), '.2f')} | {_f(traced.get('bytes'), ',.0f', ' B')} "
            f"| {other} |"
        )
    dbos = sys.get("dbos_sequential")
    if dbos:
        out.append(
            f"| DBOS (SQLite default) | {DASH} | {DASH} | {_f(dbos.get('fsyncs'), '.2f')} "
            f"| {_f(dbos.get('bytes'), ',.0f', ' B')} | rollback journal |"
        )
    if writes:
        out += ["", f"Floor for store writes: 1 + 1/steps = {writes['floor']:.2f}."]
    if sys:
        out += ["", "fsyncs and bytes per step by file (strace -f, start-up subtracted):", ""]
        for name, row in sys.items():
            parts = ", ".join(
                f"{k} {v:,.2f}" if k.startswith("fsyncs") else f"{k} {v:,.0f}"
                for k, v in row.items()
                if ":" in k and v
            )
            out.append(f"- {name}: {parts or 'none'}")
    return out


def _latency(lat: dict[str, Any] | None, pickup: dict[str, Any] | None) -> list[str]:
    out = ["", "### Latency (ms)", "", "| figure | p50 | p99 |", "|---|---|---|"]
    for store, row in (lat or {}).items():
        out.append(
            f"| start → first step, in-process, {store} | {_f(row['p50_ms'], '.3f')} "
            f"| {_f(row['p99_ms'], '.3f')} |"
        )
    if pickup:
        out.append(
            f"| cross-process pickup, SQLite, default polling ({pickup['runs']} runs per "
            f"repetition) | {_f(pickup['p50_ms'])} | {_f(pickup['p99_ms'])} |"
        )
    return out


def _claims(claims: dict[str, Any]) -> list[str]:
    small, large, ratio = claims["small"], claims["large"], claims["ratio"]
    return [
        "",
        "### Claim latency, SQLite (ms per `store.claim`, median of repetitions)",
        "",
        "| queued runs | limit=1 | limit=50 |",
        "|---|---|---|",
        f"| {small['queued']:,} | {_f(small['limit_1_ms'], '.3f')} "
        f"| {_f(small['limit_50_ms'], '.3f')} |",
        f"| {large['queued']:,} | {_f(large['limit_1_ms'], '.3f')} "
        f"| {_f(large['limit_50_ms'], '.3f')} |",
        f"| ratio | {ratio['limit_1']:.2f}× | {ratio['limit_50']:.2f}× |",
    ]


def _limits(lim: dict[str, Any]) -> list[str]:
    out = []
    for store, c in lim["claims"].items():
        out += [
            "",
            f"### Flow control, {store}: claim latency with {c['queued']:,} queued runs over "
            f"{c['keys']:,} keys, Concurrency(limit=1) (ms, median)",
            "",
            "| claim | n=1 | n=50 |",
            "|---|---|---|",
            f"| plain `claim`, same queue unlimited | {_f(c['plain_1_ms'], '.3f')} "
            f"| {_f(c['plain_50_ms'], '.3f')} |",
            f"| `claim_limited`, every bucket free | {_f(c['free_1_ms'], '.3f')} "
            f"| {_f(c['free_50_ms'], '.3f')} |",
            f"| `claim_limited`, every bucket full (leases nothing) | – "
            f"| {_f(c['full_50_ms'], '.3f')} |",
        ]
    tp = lim["throughput"]
    out += [
        "",
        f"### Flow control: throughput, SQLite, {tp['runs']} two-step runs over {tp['keys']} "
        f"keys (runs/s)",
        "",
        "| unlimited | Concurrency(limit=" + str(tp["limit"]) + ") per key |",
        "|---|---|",
        f"| {_f(tp['unlimited_runs_per_s'], ',.0f')} | {_f(tp['limited_runs_per_s'], ',.0f')} |",
    ]
    return out


def _memory(mem: dict[str, Any]) -> list[str]:
    out = [
        "",
        f"### Worker memory (a started engine idling {mem['idle_s']:g} s)",
        "",
        "| store holds | RSS | RSS growth after start | tracemalloc current | tracemalloc peak |",
        "|---|---|---|---|---|",
    ]
    for name in ("empty", "full"):
        row = mem[name]
        label = "nothing" if name == "empty" else f"{row['waiting_runs']:,} waiting runs"
        out.append(
            f"| {label} | {_f(_kib(row['rss_bytes']), ',.0f', ' KiB')} "
            f"| {_f(_kib(row['rss_growth_bytes']), ',.0f', ' KiB')} "
            f"| {_f(_kib(row['traced_bytes']), ',.1f', ' KiB')} "
            f"| {_f(_kib(row['traced_peak_bytes']), ',.1f', ' KiB')} |"
        )
    return out


def _map(res: dict[str, Any]) -> list[str]:
    out = [
        "",
        f"### `ctx.map` over {res['items']:,} items vs {res['items']:,} steps "
        "(one run, SQLite FULL)",
        "",
        "| scenario | store writes | wall time |",
        "|---|---|---|",
    ]
    for name, row in res["rows"].items():
        out.append(f"| {name} | {_f(row['writes'], ',.0f')} | {_f(row['seconds'], ',.2f', ' s')} |")
    return out


def _kib(fig: Figure) -> Figure:
    return Figure.of(v / 1024 for v in fig.samples)


def _postgres(pg: dict[str, Any]) -> list[str]:
    server = pg["server"]
    out = [
        "",
        f"### PostgreSQL {server['server_version']} (fsync={server['fsync']}, "
        f"synchronous_commit={server['synchronous_commit']}, "
        f"full_page_writes={server['full_page_writes']}; a local unix socket)",
        "",
        "| scenario | Streamline steps/s | CPU µs/step | writes/step | DBOS steps/s "
        "| DBOS CPU µs/step | ours ÷ DBOS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in pg["throughput"]:
        ours, theirs = row["ours"], row.get("dbos", {})
        out.append(
            f"| {row['scenario']} | {_f(ours['steps_per_s'])} | {_f(ours['cpu_us_per_step'])} "
            f"| {_f(ours['writes_per_step'], '.2f')} | {_f(theirs.get('steps_per_s'))} "
            f"| {_f(theirs.get('cpu_us_per_step'))} | {_f(row.get('ratio'), '.1f', '×')} |"
        )
    out += ["", "| cross-process pickup (ms) | p50 | p90 | max |", "|---|---|---|---|"]
    for label, row in pg["pickup"].items():
        what = "LISTEN/NOTIFY" if label == "notify" else "polling only (50 ms doubling to 1 s)"
        out.append(
            f"| {what}, {row['runs']} runs | {_f(row['p50_ms'], '.1f')} "
            f"| {_f(row['p90_ms'], '.1f')} | {_f(row['max_ms'], '.1f')} |"
        )
    workers = pg["workers"]
    one, four = workers["1"], workers["4"]
    out += [
        "",
        f"| worker processes draining {workers['runs']} queued runs | steps/s |",
        "|---|---|",
        f"| 1 worker (50 in flight) | {_f(one)} |",
        f"| 4 workers (50 in flight each) | {_f(four)} ({four.median / one.median:.2f}× one) |",
    ]
    return out


def _targets(res: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str, str, bool | None]] = []
    pg = res.get("postgres")
    if pg:
        for row in pg["throughput"]:
            if "ratio" in row and row["in_flight"] > 1:
                got = row["ratio"].median
                rows.append((f"{row['scenario']} vs DBOS", "≥ 10×", f"{got:.1f}×", got >= 10))
        got = pg["pickup"]["notify"]["p50_ms"].median
        rows.append(("PostgreSQL pickup p50, NOTIFY", "≤ 20 ms", f"{got:.1f} ms", got <= 20))
    for row in res.get("throughput", []):
        if "ratio" in row:
            goal = 12 if row["in_flight"] <= 1 else 25
            got = row["ratio"].median
            rows.append((f"{row['scenario']} vs DBOS", f"≥ {goal}×", f"{got:.1f}×", got >= goal))
    writes = res.get("writes")
    if writes:
        for store in ("memory", "sqlite", "mongo"):
            got = writes[store]["writes_per_step"]
            rows.append(
                (
                    f"writes/step, {store}",
                    f"{writes['floor']:.2f}",
                    f"{got:.2f}",
                    got <= writes["floor"] + 1e-9,
                )
            )
    for store, row in (res.get("latency") or {}).items():
        got = row["p50_ms"].median
        rows.append((f"start → first step p50, {store}", "≤ 0.5 ms", f"{got:.3f} ms", got <= 0.5))
    claims = res.get("claims")
    if claims:
        for limit, got in claims["ratio"].items():
            sizes = f"{claims['large']['queued']:,} ÷ {claims['small']['queued']:,} queued"
            label = limit.replace("_", "=")
            rows.append((f"claim latency {sizes}, {label}", "≤ 1.5×", f"{got:.2f}×", got <= 1.5))
    mem = res.get("memory")
    if mem:
        grow = mem["full"]["traced_peak_bytes"].median - mem["empty"]["traced_peak_bytes"].median
        rss = mem["full"]["rss_bytes"].median - mem["empty"]["rss_bytes"].median
        rows.append(
            (
                f"worker memory, {mem['full']['waiting_runs']:,} waiting runs vs none",
                "flat",
                f"RSS {rss / 1024:+,.0f} KiB, traced peak {grow / 1024:+,.1f} KiB",
                None,
            )
        )
    web_res = res.get("web")
    if web_res:
        got = web_res["last_over_first"]
        rows.append(
            (
                f"`GET /api/runs` last ÷ first page, {web_res['runs']:,} runs",
                "flat (≤ 1.5×)",
                f"{got:.2f}×",
                got <= 1.5,
            )
        )
    out = [
        "",
        "### Targets (issues 10, 21)",
        "",
        "| figure | target | measured | met |",
        "|---|---|---|---|",
    ]
    for name, target, got, met in rows:
        mark = "judge" if met is None else ("yes" if met else "**no**")
        out.append(f"| {name} | {target} | {got} | {mark} |")
    return out


def _children(section: dict[str, Any]) -> list[str]:
    """A parent joining N child runs (``benchmarks/children.py``)."""
    lines = [
        "",
        "## Child runs: one parent joining its children",
        "",
        "| store | children | children/s | store writes per child | reads per child |",
        "|---|---|---|---|---|",
    ]
    for kind, row in section.items():
        rate, writes, reads = (
            Figure(**row[k]) if isinstance(row[k], dict) else row[k]
            for k in ("children_per_s", "writes_per_child", "reads_per_child")
        )
        lines.append(
            f"| {kind} | {row['children']} | {rate.text()} | {writes.text('.2f')} "
            f"| {reads.text('.2f')} |"
        )
    floor = next(iter(section.values()))["child_floor"]
    lines += [
        "",
        f"A one-step child writes {floor} times on its own (its create and its step's commit);",
        "the rest is what the join costs: waking the parent, and its claim and release.",
    ]
    return lines


def render(res: dict[str, Any]) -> str:
    """The whole report as markdown."""
    lines = _header(res["meta"])
    disk = res.get("disk")
    if res.get("throughput"):
        lines += _throughput(res["throughput"], disk)
    if disk:
        lines += _disk(disk)
    if res.get("writes") or res.get("syscalls") or res.get("wal"):
        lines += _costs(res.get("writes"), res.get("syscalls"), res.get("wal"))
    if res.get("latency") or res.get("pickup"):
        lines += _latency(res.get("latency"), res.get("pickup"))
    if res.get("claims"):
        lines += _claims(res["claims"])
    if res.get("limits"):
        lines += _limits(res["limits"])
    if res.get("memory"):
        lines += _memory(res["memory"])
    if res.get("postgres"):
        lines += _postgres(res["postgres"])
    if res.get("web"):
        lines += web.render(res["web"])
    if res.get("children"):
        lines += _children(res["children"])
    if res.get("map"):
        lines += _map(res["map"])
    lines += _targets(res)
    if res.get("notes"):
        lines += ["", *(f"Note: {n}" for n in res["notes"])]
    return "\n".join(lines) + "\n"
