"""``python -m omnicanal.webhooks serve``: the receiver as :class:`WebhooksProcess` starts it.

Users run ``omnicanal webhooks serve``; this entry point also takes a listening socket
inherited from the parent (``--fd``) and a private JSON file with the read token and,
for tests before a channel is in the registry, an explicit channel → secrets mapping.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from pathlib import Path

from omnicanal.settings import get_settings
from omnicanal.webhooks.app import WebhookSecrets
from omnicanal.webhooks.server import channels_from_settings, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omnicanal.webhooks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the webhook receiver in the foreground")
    p.add_argument("--host", help="default: OMNICANAL_WEBHOOKS_HOST")
    p.add_argument("--port", type=int, help="default: OMNICANAL_WEBHOOKS_PORT")
    p.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    p.add_argument("--dir", help="the event store (default: OMNICANAL_WEBHOOKS_DIR)")
    p.add_argument(
        "--config-file",
        help="JSON with read_token and channels ({name: {app_secret, verify_token}} or null "
        "for the registry's)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    channels = None
    read_token = settings.webhooks_read_token
    if args.config_file:
        config = json.loads(Path(args.config_file).read_text())
        read_token = config.get("read_token") or read_token
        if config.get("channels") is not None:
            channels = {n: WebhookSecrets(**s) for n, s in config["channels"].items()}
    if channels is None:
        channels = channels_from_settings(settings)
    run(
        args.dir or settings.webhooks_dir,
        channels,
        read_token,
        host=args.host or settings.webhooks_host,
        port=args.port or settings.webhooks_port,
        sock=socket.socket(fileno=args.fd) if args.fd is not None else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
