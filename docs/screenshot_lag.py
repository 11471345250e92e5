"""Screenshot of the lag page (docs/lag-page.png) of a worker that is falling behind.

Runs a worker against the simulators with slow provider lanes, publishes changes faster than they
drain, and after ``--seconds`` takes the page with headless Chromium (``apt-get install chromium``).
Uses KAFKA_BOOTSTRAP_SERVERS, or starts the local Kafka as ``contactsync demo`` does::

    .venv/bin/python docs/screenshot_lag.py            # or: make lag-screenshot
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline.dev.cdc_generator import generate_events
from pipeline.dev.cdc_publisher import publish
from pipeline.dev.demo import free_port
from pipeline.dev.local_kafka import LocalKafka
from pipeline.dev.local_stack import StackConfig, WorkerProcess, wait_until_consuming
from pipeline.dev.simulators.runner import run_simulators
from pipeline.kafka import topic_admin
from pipeline.kafka.topics import TopicCatalog
from pipeline.settings import REPO_ROOT, Settings

SLOW_LANES = {  # requests per second and records per request: each lane drains a few dozen a second
    "CONTACTSYNC_PROVIDERS__HUBSPOT__RATE_PER_SECOND": "2",
    "CONTACTSYNC_PROVIDERS__HUBSPOT__BATCH_SIZE": "10",
    "CONTACTSYNC_PROVIDERS__SALESFORCE__RATE_PER_SECOND": "1",
    "CONTACTSYNC_PROVIDERS__SALESFORCE__BATCH_SIZE": "20",
    "CONTACTSYNC_PROVIDERS__MAILCHIMP__RATE_PER_SECOND": "1",
    "CONTACTSYNC_PROVIDERS__MAILCHIMP__BATCH_SIZE": "10",
}
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


async def run(seconds: float, rate: float, out: Path) -> None:
    settings = Settings()
    bootstrap = settings.kafka_bootstrap_servers or LocalKafka(settings.local_kafka).start().bootstrap
    run_id = time.strftime("%Y%m%d-%H%M%S")
    catalog = TopicCatalog.load(settings.kafka.topics_file, f"shot-{run_id}.")
    await topic_admin.apply(catalog, bootstrap)
    work = Path(tempfile.mkdtemp(prefix="lag-shot-"))
    async with run_simulators() as sims:
        stack = StackConfig(bootstrap, f"contactsync-shot-{run_id}", catalog.prefix, sims.base_urls(),
                            extra_env=SLOW_LANES)
        worker = WorkerProcess(stack, work / "data", free_port(), work / "worker.log").start()
        try:
            if not await wait_until_consuming(bootstrap, stack.app_id, 1, timeout_s=90):
                raise SystemExit(f"the worker did not join its group; see {worker.log_file}")
            events = generate_events(int(seconds * rate), records=2000, seed=5, invalid_ratio=0.01)
            await publish(events, bootstrap, catalog.cdc, rate=rate)
            await asyncio.sleep(6)  # one more lag sample after the last event
            screenshot(f"http://127.0.0.1:{worker.web_port}/lag/page", out)
        finally:
            worker.stop()
            shutil.rmtree(work, ignore_errors=True)


def screenshot(url: str, out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        subprocess.run(  # noqa: S603
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1100,1180",
             f"--screenshot={out}", url],
            check=True, capture_output=True, timeout=120,
        )
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90, help="How long to publish before the shot.")
    parser.add_argument("--rate", type=float, default=60, help="Change events per second.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "lag-page.png")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.rate, args.out))


if __name__ == "__main__":
    main()
