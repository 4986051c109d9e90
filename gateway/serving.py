"""Run the ASGI app under uvicorn: one process, or N worker processes each with its own
listening socket on the same port (SO_REUSEPORT).

Why not uvicorn's own --workers: its workers share one socket and race to accept, so a client
that opens its keep-alive connections in one burst (a sending anchor's pool, a load test)
often lands them all on one worker while the others idle. With a socket per worker the kernel
spreads connections across workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from typing import Any

import uvicorn

from gateway.http_protocol import HeadLimitedHttpToolsProtocol

log = logging.getLogger("gateway.serving")

APP = "gateway.app:asgi_from_environment"
RESTART_PAUSE_SECONDS = 1.0
CRASH_LOOP = (5, 60.0)  # this many worker deaths within this many seconds: give up


def uvicorn_config(**options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        APP,
        factory=True,
        loop="uvloop",
        http=HeadLimitedHttpToolsProtocol,  # httptools, with limits on request heads
        log_config=None,
        lifespan="on",
        server_header=False,
        proxy_headers=False,
        **options,
    )


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose
    # protocol says TCP, and without it keep-alive answers wait on Nagle's algorithm.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    from gateway.logs import configure_logging

    configure_logging(os.environ.get("GATEWAY_LOG_LEVEL", "info"))
    sock = _listening_socket(host, port)
    uvicorn.Server(uvicorn_config(**options)).run(sockets=[sock])


def serve(host: str, port: int, workers: int, **options: Any) -> int:
    """Serve until SIGINT/SIGTERM; a worker that dies is restarted. Returns an exit code."""
    if workers <= 1:
        uvicorn.Server(uvicorn_config(host=host, port=port, **options)).run()
        return 0
    if port_in_use(host, port):
        log.error("port %s:%d is already in use", host, port)
        return 2
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=_worker, args=(host, port, options), daemon=False)
        proc.start()
        return proc

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs = [start() for _ in range(workers)]
    log.info("serving on http://%s:%d with %d worker processes", host, port, workers)
    deaths: list[float] = []
    code = 0
    while not stopping:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            if proc.is_alive() or stopping:
                continue
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < CRASH_LOOP[1]] + [now]
            if len(deaths) >= CRASH_LOOP[0]:
                log.error("workers keep exiting (%d in %.0f s); stopping", *CRASH_LOOP)
                stopping, code = True, 1
                break
            log.warning("worker %d exited with %s; restarting", proc.pid, proc.exitcode)
            time.sleep(RESTART_PAUSE_SECONDS)
            procs[i] = start()
    for proc in procs:
        if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
    return code
