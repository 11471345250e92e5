"""Backfill: the rows of a snapshot file or a PostgreSQL table onto the CDC topic as snapshot events."""
