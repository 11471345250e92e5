"""``python -m pipeline.dev.simulators [options]``: ``contactsync simulate`` without the other commands."""

from __future__ import annotations

if __name__ == "__main__":
    import sys

    import typer

    from pipeline.cli.simulate import simulate
    from pipeline.errors import ConfigError

    try:
        typer.run(simulate)
    except ConfigError as exc:
        print(f"contactsync simulate: {exc}", file=sys.stderr)
        sys.exit(2)
