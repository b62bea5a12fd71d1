"""MongoDB store (arriving)."""
