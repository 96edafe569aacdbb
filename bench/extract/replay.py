"""A tap's own CPU, without the sandbox: record a sync's answers once, replay them.

    .venv/bin/python bench/extract/replay.py record CONFIG.json ANSWERS.pickle [--tap square]
    .venv/bin/python bench/extract/replay.py replay CONFIG.json ANSWERS.pickle [--syncs N]
        [--profile OUT.prof] [--tap square]

``--tap`` names the tap (``shopify``, the default, ``square`` or ``vtex``).

``record`` runs the tap in this process against the server its config names (a
``bench/extract/run.py``-style sandbox with its limits off) and keeps every answer, keyed
by method, URL and JSON body. ``replay`` runs the same sync with those answers served by
a ``requests`` adapter in the process: no server, no socket, no waiting, so the CPU time
of the sync (``time.process_time``, start-up excluded) is the tap's own, which the
emulation's speed does not blur. Compare two trees by running this script with each
tree's sources first on ``PYTHONPATH``, alternately, one sync per process. A bulk
sync's polls are answered with the last answer recorded for them (the completed
operation). Every ``requests.Session`` made in the process is pointed at the recorder or
the replayer (``Session.__init__`` is wrapped): a measuring tool, not a test double.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

Key = tuple[str, str, str | None]


def request_key(request: requests.PreparedRequest) -> Key:
    body = request.body
    if isinstance(body, bytes):
        body = body.decode()
    text = json.dumps(json.loads(body), sort_keys=True) if body else None
    return (str(request.method), str(request.url), text)


class Recording(HTTPAdapter):
    def __init__(self, answers: dict[Key, tuple[int, dict, bytes]]) -> None:
        super().__init__()
        self.answers = answers

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        response = super().send(request, **kwargs)
        self.answers[request_key(request)] = (
            response.status_code,
            dict(response.headers),
            response.content,
        )
        return response


class Replaying(BaseAdapter):
    def __init__(self, answers: dict[Key, tuple[int, dict, bytes]]) -> None:
        super().__init__()
        self.answers = answers

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        status, headers, content = self.answers[request_key(request)]
        response = requests.Response()
        response.request, response.url, response.status_code = request, request.url, status
        response.headers.update(headers)
        response.raw = io.BytesIO(content)
        return response

    def close(self) -> None:
        pass


def route_sessions(adapter: BaseAdapter) -> None:
    original = requests.Session.__init__

    def init(session: requests.Session) -> None:
        original(session)
        session.mount("http://", adapter)
        session.mount("https://", adapter)

    requests.Session.__init__ = init  # type: ignore[method-assign]


#: The tap class of each ``--tap``.
TAPS = {"shopify": "TapShopify", "square": "TapSquare", "vtex": "TapVtex"}


def sync(config: dict[str, Any], tap_name: str = "shopify") -> None:
    import importlib  # noqa: PLC0415

    module = importlib.import_module(f"tap_{tap_name}.tap")  # after the routing
    tap = getattr(module, TAPS[tap_name])(config=config)
    saved = sys.stdout
    with open(os.devnull, "w") as sys.stdout:  # noqa: PTH123
        try:
            tap.sync_all()
        finally:
            sys.stdout = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("record", "replay"))
    parser.add_argument("config", type=Path)
    parser.add_argument("answers", type=Path)
    parser.add_argument("--syncs", type=int, default=1, help="replays in this process")
    parser.add_argument("--profile", type=Path, help="also write a cProfile of one replay")
    parser.add_argument("--tap", choices=sorted(TAPS), default="shopify")
    args = parser.parse_args()
    config = json.loads(args.config.read_text())
    logging.disable(logging.WARNING)
    if args.mode == "record":
        answers: dict[Key, tuple[int, dict, bytes]] = {}
        route_sessions(Recording(answers))
        sync(config, args.tap)
        args.answers.write_bytes(pickle.dumps(answers))
        print(json.dumps({"answers": len(answers)}))
        return
    answers = pickle.loads(args.answers.read_bytes())  # noqa: S301 - our own file
    route_sessions(Replaying(answers))
    seconds = []
    for _ in range(args.syncs):
        started = time.process_time()
        sync(config, args.tap)
        seconds.append(round(time.process_time() - started, 3))
    if args.profile:
        cProfile.runctx(
            "sync(config, tap)", globals(), {"config": config, "tap": args.tap}, str(args.profile)
        )
    print(json.dumps({"cpu_s": seconds, "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
