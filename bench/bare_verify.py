"""The yardstick for the SEP-3 benchmark: a bare Starlette endpoint that reads the same form
and verifies one Ed25519 signature over ``data``, nothing else.

    python bench/bare_verify.py --port 8003 --key G... [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import signal
import socket
import sys
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from stellar_sdk import Keypair
from stellar_sdk.exceptions import BadSignatureError


def app() -> Starlette:
    key = Keypair.from_public_key(os.environ["BARE_VERIFY_KEY"])

    async def verify(request: Request) -> JSONResponse:
        fields = dict(parse_qsl(await request.body()))
        try:
            key.verify(fields[b"data"], base64.b64decode(fields[b"sig"]))
        except (KeyError, BadSignatureError):
            return JSONResponse({"error": "bad signature"}, status_code=400)
        return JSONResponse({"info_status": "ok", "tx_status": "ok"})

    return Starlette(routes=[Route("/verify", verify, methods=["POST"])])


def serve_one(port: int) -> None:
    """One worker on its own SO_REUSEPORT socket, as `gateway serve` runs its workers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    config = uvicorn.Config(
        app, factory=True, loop="uvloop", http="httptools", log_level="warning", lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=8003)
    p.add_argument("--key", required=True)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    os.environ["BARE_VERIFY_KEY"] = args.key
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=serve_one, args=(args.port,)) for _ in range(args.workers)]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            proc.terminate()


if __name__ == "__main__":
    main()
