"""Streamline's performance suite (``python -m benchmarks``); never part of pass/fail."""
