"""``omnicanal whatsapp statuses``: the delivery statuses of the WhatsApp syncs' messages.

It first reads the status events the webhook receiver got since the last read into the
ledger (:mod:`.statuses`), then prints, per WhatsApp sync, its messages by furthest
status (sent, delivered, read, failed) and the latest failures with Meta's reason, so a
message that failed after the sync counted it as sent (a number not on WhatsApp, 131026)
is seen and counted.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``whatsapp`` command to the CLI's subcommands."""
    p = sub.add_parser("whatsapp", help="WhatsApp syncs: delivery statuses of their messages")
    sp = p.add_subparsers(dest="action", required=True)
    r = sp.add_parser(
        "statuses", help="read the delivery statuses into the ledger; counts and failures"
    )
    r.add_argument("name", nargs="?", help="one WhatsApp sync (default: all)")
    r.add_argument(
        "--no-read",
        action="store_true",
        help="show the ledger only; read nothing new",
    )
    r.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_whatsapp)


def cmd_whatsapp(args: argparse.Namespace) -> int:
    from omnicanal.channels.whatsapp.statuses import collect_statuses, status_counts
    from omnicanal.settings import get_settings
    from omnicanal.warehouse import connect

    settings = get_settings()
    read = None if args.no_read else collect_statuses(settings)
    with connect(settings) as conn:
        counts = status_counts(conn, args.name)
        conn.commit()
    if args.json:
        print(
            json.dumps(
                {"read": read.as_dict() if read else None, "syncs": counts}, default=str, indent=2
            )
        )
        return 0
    if read is not None:
        print(
            f"read {read.events_read} event(s) from the receiver: {read.statuses} status(es) "
            f"of our messages, {read.unmatched} of others"
        )
    if not counts:
        print("no WhatsApp sync has sent a message yet")
    for sync in counts:
        total = sum(sync[s] for s in ("sent", "delivered", "read", "failed"))
        print(
            f"{sync['sync']}: {total} message(s): {sync['sent']} sent, {sync['delivered']} "
            f"delivered, {sync['read']} read, {sync['failed']} failed"
        )
        for failure in sync["failures"]:
            print(f"  failed {failure['record_key']}: {failure['error']}")
    return 0
