"""Streamline core: engine, run model, Store protocol, hooks and errors."""
