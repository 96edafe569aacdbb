"""``omnicanal privacy …``: the data subject's rights under LGPD (art. 18), one verb each.

- ``privacy erase``: find a person through identity and delete every row that carries
  them from every schema; dry run unless ``--yes`` (counts per table, never the data);
- ``privacy requests``: the erasure register: what each request erased, which
  destinations held the person and whether the syncs told them, the rows later loads
  brought back and were dropped; it also forgets the activation ledger rows of
  destinations that were told (the ledger keeps each row's payload).

Named ``privacy`` rather than ``lgpd``: the same verbs answer GDPR's and CCPA's requests,
and access or portability (art. 18, II and V) belong beside erasure.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``privacy`` command to the CLI's subcommands."""
    p = sub.add_parser("privacy", help="LGPD requests: erase a person, the erasure register")
    sp = p.add_subparsers(dest="action", required=True)
    e = sp.add_parser(
        "erase",
        help="delete a person from every schema, through identity (dry run unless --yes)",
        description="Find the person's customer(s) through identity, then every row in every "
        "schema that carries their email, phone, CPF, platform ids or customer_id, and delete "
        "them in one transaction; register hashes of what was erased so later extracts drop "
        "it. Without --yes, prints what would be erased (counts per table).",
    )
    e.add_argument("--email", action="append", default=[], help="an email of the person")
    e.add_argument(
        "--phone", action="append", default=[], help="a phone (+55 DDD number, ninth digit or not)"
    )
    e.add_argument("--cpf", action="append", default=[], help="the CPF, digits or 123.456.789-09")
    e.add_argument("--customer-id", action="append", default=[], help="identity's customer_id")
    e.add_argument(
        "--record-id", action="append", default=[], help="a record id or SOURCE:RECORD_ID"
    )
    e.add_argument(
        "--request-id",
        help="the request's id in your records (default: lgpd-<UTC time>-<random>)",
    )
    mode = e.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="count only (the default)")
    mode.add_argument("--yes", action="store_true", help="erase")
    e.add_argument(
        "--all-matching",
        action="store_true",
        help="erase every customer the identifiers find, even several (a shared phone)",
    )
    e.add_argument(
        "--schema",
        default="intermediate",
        help="schema of the identity tables (default: intermediate, the pipeline's)",
    )
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    r = sp.add_parser(
        "requests",
        help="the erasure register: requests, destinations told, rows dropped on later loads",
    )
    r.add_argument("request_id", nargs="?", help="one request (default: all)")
    r.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.action == "erase":
        return _erase(args)
    return _requests(args)


def _erase(args: argparse.Namespace) -> int:
    from omnicanal.privacy.erasure import Request, erase
    from omnicanal.settings import get_settings
    from omnicanal.warehouse import connect

    request = Request(
        emails=args.email,
        phones=args.phone,
        cpfs=args.cpf,
        customer_ids=args.customer_id,
        record_ids=args.record_id,
        request_id=args.request_id,
        all_matching=args.all_matching,
    )
    request.tokens()  # a malformed value is named before the warehouse is reached
    with connect(get_settings()) as conn:
        plan = erase(conn, request, dry_run=not args.yes, identity_schema=args.schema)
    if args.json:
        print(json.dumps(plan.as_dict(), indent=2))
        return 0
    verb = "would erase" if plan.dry_run else "erased"
    print(
        f"request {plan.request_id}: {verb} {plan.rows} row(s) of {len(plan.customers)} "
        f"customer(s), {plan.records} identity record(s)"
        + (
            " (" + ", ".join(f"{s} {n}" for s, n in plan.sources.items()) + ")"
            if plan.sources
            else ""
        )
    )
    for option in plan.unmatched:
        print(f"  {option}: matches no identity record")
    if plan.shared:
        print(
            f"  {plan.shared} of their email/phone/CPF value(s) other customers' records carry "
            "too (a household's phone): those rows of others are kept"
        )
    for table, count in plan.tables.items():
        print(f"  {table}: {count}")
    if plan.destinations:
        told = "will be told" if not plan.dry_run else "would be told"
        print(f"destinations holding the person ({told} by their next sync run):")
        for sync, count in plan.destinations.items():
            print(f"  {sync}: {count} row(s)")
    if plan.dry_run:
        print("dry run: nothing changed; --yes to erase")
    else:
        print(
            "registered; later extracts drop what the platforms serve again of this person. "
            "Run the syncs, then `omnicanal privacy requests "
            f"{plan.request_id}` to see the destinations told"
        )
    return 0


def _requests(args: argparse.Namespace) -> int:
    from omnicanal.errors import OmnicanalError
    from omnicanal.privacy.register import forget_told, request_rows
    from omnicanal.settings import get_settings
    from omnicanal.warehouse import connect

    with connect(get_settings()) as conn:
        found = request_rows(conn, args.request_id)
        if args.request_id and not found:
            raise OmnicanalError(f"no erasure request {args.request_id} in the register")
        for request in found:
            request["ledger_rows_forgotten"] = forget_told(conn, request["request_id"])
        conn.commit()
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    if not found:
        print("no erasure request yet")
    for request in found:
        print(
            f"{request['request_id']} at {request['requested_at']:%Y-%m-%d %H:%M:%S %Z}: "
            f"{request['rows_erased']} row(s) of {request['customers']} customer(s) erased"
        )
        for sync, state in request["destinations"].items():
            status = (
                "told (removed)"
                if state["still_held"] == 0
                else f"pending: {state['still_held']} row(s) still held; run the sync"
            )
            print(f"  destination {sync}: {status}")
        for table, rows in request["blocked"].items():
            print(f"  dropped on later loads: {table}: {rows}")
    return 0
