"""Connection guards' pieces: one log line per condition, quiet accept errors, the fd limit."""

from __future__ import annotations

import asyncio
import logging

from m0rank.server.connections import LogOncePer, quiet_accept_errors, raise_open_file_limit


def test_a_repeated_condition_is_logged_once_per_interval_with_its_count(caplog) -> None:
    condition = LogOncePer("refused connections over the cap", interval_s=3600)
    with caplog.at_level(logging.INFO, logger="m0rank.server.connections"):
        for _ in range(10_000):
            condition.hit()
    lines = [r.message for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("refused connections over the cap (1 time")


def test_accept_errors_are_collapsed_other_loop_errors_pass_through(caplog) -> None:
    loop = asyncio.new_event_loop()
    seen: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        quiet_accept_errors(loop)
        with caplog.at_level(logging.WARNING, logger="m0rank.server.connections"):
            for _ in range(500):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})
        loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    assert sum("out of system resources" in r.message for r in caplog.records) == 1
    assert [c["message"] for c in seen] == ["something else"]


def test_the_connection_cap_fits_under_the_open_file_limit() -> None:
    import resource

    fits = raise_open_file_limit(10**9)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 1 <= fits <= soft - 64
    assert raise_open_file_limit(100) == 100
