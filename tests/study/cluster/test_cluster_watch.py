"""The watch on the Ray cluster's GCS (study/cluster/watch.py) against a real listening socket that goes away:
the driver's loop gets ClusterLost, and a driver stuck elsewhere is ended with the message and exit code.
The whole path on a real cluster whose GCS is killed: tests/study/cluster/test_cluster.py."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time

import pytest

from study.cluster.watch import ClusterLost, ClusterWatch, answers


def listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_the_loop_hears_of_a_lost_cluster_once_it_stays_silent():
    s = listener()
    address = s.getsockname()
    with ClusterWatch(address, "resume it.", lost_after_s=1.0, interval_s=0.1, grace_s=30) as watch:
        time.sleep(0.5)
        watch.check()                 # it answers: nothing happens
        assert answers(address)
        s.close()
        deadline = time.monotonic() + 10
        while not watch.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ClusterLost) as info:
            watch.check()
    assert str(info.value) == (f"the Ray cluster at 127.0.0.1:{address[1]} stopped answering mid-study "
                               "(no answer for 1 s). resume it.")
    assert watch.handled.is_set()


def test_a_driver_stuck_elsewhere_is_ended_with_the_message():
    code = textwrap.dedent("""
        import socket, time
        from study.cluster.watch import ClusterWatch
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
        address = s.getsockname(); s.close()
        with ClusterWatch(address, "resume it.", lost_after_s=0.5, interval_s=0.1, grace_s=0.5, exit_code=7):
            time.sleep(30)            # the main thread never looks
        print("not reached")
    """)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().startswith("gradstudy: cluster error: the Ray cluster at 127.0.0.1:"), done.stderr
    assert time.monotonic() - started < 20
