"""The anchor: the same server stack (uvicorn, httptools, uvloop) answering 200 to every
POST after reading its body, storing nothing and checking nothing.

    python bench/webhooks/bare.py --fd N
"""

from __future__ import annotations

import argparse
import socket

import uvicorn


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"received":1}'})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=args.fd)])


if __name__ == "__main__":
    main()
