"""OpenTelemetry tracing plugin (arriving)."""
