"""The test servers' own checks: a test Redis never mistakes another server on its port for itself."""

from __future__ import annotations

import pytest

from tests.faults.processes import RedisProcess, stop_all
from tests.live import free_port


def test_a_redis_whose_port_another_server_holds_fails_to_start_instead_of_using_it(tmp_path):
    holder = RedisProcess(tmp_path / "holder").start()
    try:
        intruder = RedisProcess(tmp_path / "intruder", port=holder.port)
        with pytest.raises(RuntimeError, match=f"port {holder.port}|on {holder.port} exited"):
            intruder.start()
        stop_all(intruder)
    finally:
        stop_all(holder)


def test_free_port_never_hands_out_a_port_twice():
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
