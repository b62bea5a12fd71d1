"""OpenTelemetry tracing for Streamline: ``StreamlineTracing``, a plugin.

```python
from streamline_otel import StreamlineTracing

engine = Engine(store, plugins=[StreamlineTracing(tracer_provider=provider)])
```

or, with the global tracer provider, by entry point in your project's
``pyproject.toml``::

    [project.entry-points.streamline]
    otel = "streamline_otel.plugin:tracing"

Span model
----------
A run can suspend for days and continue in another process, and a span must
be ended by the process that started it, so a span never covers a whole run.
The plugin traces **execution segments** instead:

``workflow <workflow_id>`` — one per segment
    What one process does for one run in one go. It starts at the first thing
    this process does for the run: ``workflow:started`` or ``workflow:resumed``
    here (the span then starts at that call and is a child of the span current
    there, e.g. the HTTP request that started the run, provided the run
    executes here within ``PENDING_TTL`` seconds), or this worker claiming the
    run (a new trace root). It ends when the run ends here
    (``workflow:completed|failed|cancelled``) or suspends (``ctx.wait``,
    ``wait_for``, ``sleep``, a retry backoff) and this process does not
    continue it within ``resume_window`` seconds (plus the retry delay); the
    span is then ended as of the moment the run suspended. A run continued in
    time keeps one segment, so a retried step's attempts are siblings. A later
    segment of the same run in this process links to the previous one; all
    segments carry ``streamline.run_id``, which is what joins them across
    processes.

``step <step_id>`` — one per attempt
    Child of its segment, from ``streamline_before_step`` until the attempt's
    outcome is committed (``step:completed|failed|waiting``). It is the
    current span while the handler runs, so spans the handler makes (HTTP
    clients, database drivers) nest under it. A failed attempt records the
    exception and has status ERROR.

Attributes:

==============================  ==============================================
``streamline.run_id``           segments and attempts
``streamline.workflow_id``      segments and attempts
``streamline.workflow_version`` attempts; segments once a step ran here
``streamline.step_id``          attempts
``streamline.attempt``          attempts (1-based)
``streamline.will_retry``       failed attempts
``streamline.step.outcome``     attempts: ``completed``, ``failed``,
                                ``waiting``, or the segment's outcome if it
                                ended first (``abandoned`` if superseded)
``streamline.segment.cause``    segments: ``started``, ``resumed``,
                                ``claimed``, ``recovered``, or the run's end
                                (``cancelled``, ...) seen without execution
``streamline.outcome``          segments: ``completed``, ``failed``,
                                ``cancelled``, ``suspended``, ``evicted``,
                                ``closed``
==============================  ==============================================

A failed run records its exception on the segment, with status ERROR. Other
events become span events: ``workflow:waiting|retry|resumed|recovered``,
``step:skipped|retry-scheduled``, a wait completing, custom ``ctx.emit``
names (on the attempt's span) and ``engine:error``/``scheduler:error``
(recorded as exceptions). Payloads are never copied into spans.

Memory is bounded: suspended segments end after ``resume_window``, at most
``max_open_runs`` segments are open (the least recently active is ended with
outcome ``evicted``), and the small bookkeeping of runs started here but not
executed here is capped the same way. Call :meth:`StreamlineTracing.close`
at shutdown to end what is still open.
"""

from streamline_otel._tracing import StreamlineTracing

__all__ = ["StreamlineTracing"]
