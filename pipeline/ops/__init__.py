"""Operating a running pipeline: lag, record status, re-sends, replays, dead letters, backfills and metrics."""
