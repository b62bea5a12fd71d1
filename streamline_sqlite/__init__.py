"""SQLite store (arriving)."""
