"""A worker's data dir lock and web port check, on this machine's file system and loopback interface."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pipeline.cli.worker_claims import LOCK_FILE, check_web_port, data_dir_lock
from pipeline.errors import ConfigError


def test_data_dir_is_created_and_held_until_the_block_ends(tmp_path: Path) -> None:
    """A missing data dir is created; while one holder has it a second is refused naming the holder's
    pid and the setting; once released it can be taken again."""
    data_dir = tmp_path / "a" / "data"
    with data_dir_lock(data_dir):
        assert (data_dir / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigError) as caught, data_dir_lock(data_dir):
            pass
    with data_dir_lock(data_dir):
        pass

    assert str(caught.value) == (
        f"data dir {data_dir} is in use by another worker (pid {os.getpid()}); "
        "give each worker its own CONTACTSYNC_DATA_DIR"
    )


def test_a_data_dir_that_cannot_be_created_names_the_setting() -> None:
    """A path under /proc cannot be created: one line naming CONTACTSYNC_DATA_DIR and why."""
    with pytest.raises(ConfigError, match=r"^CONTACTSYNC_DATA_DIR=/proc/nope cannot be used: No such file"), \
            data_dir_lock(Path("/proc/nope")):
        pass


def test_a_port_another_process_listens_on_is_refused() -> None:
    """A port with a listener on it is refused naming the setting; once closed it passes."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(ConfigError, match=f"^web port {port} on 127.0.0.1 is in use"):
            check_web_port("127.0.0.1", port)
    check_web_port("127.0.0.1", port)


@pytest.mark.parametrize(
    ("host", "message"),
    [("nosuchhost.invalid", "CONTACTSYNC_WEB_HOST=nosuchhost.invalid does not resolve"),
     ("192.0.2.1", "cannot listen on 192.0.2.1:")],  # TEST-NET-1: no interface of this machine has it
)
def test_a_host_this_machine_cannot_listen_on_is_refused(host: str, message: str) -> None:
    """A web host that does not resolve, or is not an address of this machine, is one line."""
    with pytest.raises(ConfigError, match=f"^{message}"):
        check_web_port(host, 6066)
