"""``omnicanal``: every action a user may take, one verb each.

DAG tasks call the same functions, so what works here works under Airflow.
Errors the user can act on (:class:`OmnicanalError`) are printed without a
traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from omnicanal.errors import OmnicanalError
from omnicanal.settings import all_settings, get_settings


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


# -- warehouse ---------------------------------------------------------------------------


def cmd_warehouse(args: argparse.Namespace) -> int:
    from omnicanal import warehouse

    settings = get_settings()
    if args.action == "up":
        url = warehouse.up(settings)
        print(f"warehouse up: {url.redacted()}")
    elif args.action == "down":
        stopped = warehouse.down(settings)
        print("warehouse stopped" if stopped else "warehouse was not running")
    elif args.action == "status":
        info = warehouse.status(settings)
        _print_json(info)
        return 0 if info.get("reachable") else 1
    elif args.action == "url":
        where = warehouse.url(settings)
        print(where.url() if args.show_password else where.redacted())
    return 0


# -- sandbox -----------------------------------------------------------------------------


def cmd_sandbox(args: argparse.Namespace) -> int:
    from pathlib import Path

    from omnicanal.sandbox import world as world_mod

    settings = get_settings()
    if args.action == "world":
        world = world_mod.generate_world(args.people, args.seed)
        out = Path(args.output or settings.world_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        world.to_json(out)
        print(f"world of {len(world.people)} people (seed {args.seed}) written to {out}")
        return 0
    from omnicanal.channels import CHANNELS
    from omnicanal.sandbox.app import emulation_options, generate_world_file, serve

    world_path = Path(args.world) if args.world else settings.world_path
    if not args.world:
        # A fresh world each start: "recent" orders stay recent to the wall clock.
        generate_world_file(world_path, people=args.people, seed=args.seed)
    emulated = ", ".join(c.title for c in CHANNELS.values() if c.emulation)
    print(f"sandbox serving {world_path} on http://{args.host}:{args.port}: {emulated}")
    serve(world_path, host=args.host, port=args.port, **emulation_options(settings))
    return 0


# -- webhooks ----------------------------------------------------------------------------


def cmd_webhooks(args: argparse.Namespace) -> int:
    from omnicanal.webhooks.server import channels_from_settings, serve

    settings = get_settings()
    host = args.host or settings.webhooks_host
    port = args.port or settings.webhooks_port
    names = ", ".join(sorted(channels_from_settings(settings))) or "no channel"
    print(f"webhook receiver on http://{host}:{port} for {names}; store {settings.webhooks_dir}")
    serve(settings, host, port)
    return 0


# -- extract / dbt / sync ----------------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    from omnicanal.extract import run_extract

    report = run_extract(get_settings(), args.source, full_refresh=args.full_refresh)
    print(f"extracted {report.source} in {report.seconds:.1f}s; rows now: {report.rows}")
    if report.quarantined:
        print(
            f"{report.quarantined} record(s) quarantined with their reason in "
            f"raw_{report.source}._quarantine"
        )
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    from omnicanal.orchestration.dbt import run_dbt

    return run_dbt(get_settings(), args.dbt_args or ["build"])


def cmd_sync(args: argparse.Namespace) -> int:
    from omnicanal.activation.definitions import load_definitions

    settings = get_settings()
    if args.action == "list":
        for definition in load_definitions(settings.dbt_project_dir).values():
            print(
                f"{definition.name}: {definition.schema}.{definition.model} -> "
                f"{definition.destination} (key {definition.key})"
            )
        return 0
    if args.action == "forget":
        from omnicanal.activation.definitions import get_definition
        from omnicanal.activation.ledger import forget
        from omnicanal.warehouse import connect

        definition = get_definition(settings.dbt_project_dir, args.name)
        with connect(settings) as conn:
            count = forget(conn, definition.name)
        print(f"forgot {count} ledger rows of {definition.name}; the next run sends all rows")
        return 0
    if args.action == "plan":
        from omnicanal.activation.engine import plan_sync

        definition, planned = plan_sync(settings, args.name)
        if args.json:
            _print_json({"sync": definition.name, **planned.as_dict()})
            return 0
        print(
            f"{definition.name} -> {definition.destination} ({definition.mode} mode; "
            "dry run, nothing sent)"
        )
        for action, label in (
            ("insert", "adds"),
            ("update", "updates"),
            ("remove", "removes"),
            ("depart", "departs"),
        ):
            sample = ", ".join(planned.samples[action])
            print(
                f"  {label:8} {planned.counts[action]:>8}" + (f"  e.g. {sample}" if sample else "")
            )
        print(f"  {'unchanged':8} {planned.unchanged:>8}")
        if planned.withheld:
            print(f"  {planned.withheld} row(s) left out: no consent for this destination")
        if planned.held:
            print(
                f"  {planned.held} refused row(s) held back; `omnicanal sync replay` resends them"
            )
        return 0
    if args.action == "status":
        from omnicanal.activation.ledger import describe_run, status
        from omnicanal.warehouse import connect

        name = None
        if args.name:
            from omnicanal.activation.definitions import get_definition

            name = get_definition(settings.dbt_project_dir, args.name).name
        with connect(settings) as conn:
            syncs = status(conn, name, runs=args.runs)
        if args.json:
            _print_json(syncs)
            return 0
        if not syncs:
            print("no sync has run yet")
        for sync in syncs:
            print(
                f"{sync['sync']}: {sync['held_at_destination']} held at the destination, "
                f"{sync['pending']} pending, {sync['dead_letters']} dead letter(s)"
                + (f", {sync['in_doubt']} in doubt" if sync.get("in_doubt") else "")
            )
            for run in sync["runs"]:
                print(f"  {describe_run(run)}")
        return 0
    from omnicanal.activation.engine import run_sync

    if args.action == "replay":
        report = run_sync(settings, args.name, replay=True)
    else:
        report = run_sync(settings, args.name, dry_run=args.dry_run, full_resync=args.full_resync)
    _print_json(report.as_dict())
    return 0 if report.failed == 0 else 1


# -- identity ---------------------------------------------------------------------------


def cmd_identity(args: argparse.Namespace) -> int:
    from pathlib import Path

    from omnicanal.identity.resolve import parse_fuzzy_overrides, resolve_file

    settings = get_settings()
    if args.action == "explain":
        from omnicanal.identity.explain import explain, render

        explanation = explain(settings, args.key, schema=args.schema)
        if args.json:
            _print_json(explanation.as_dict())
        else:
            print(render(explanation))
        return 0
    fuzzy = parse_fuzzy_overrides(settings, args.fuzzy or [])
    report = resolve_file(
        settings, Path(args.input), Path(args.output), schema=args.schema, fuzzy=fuzzy
    )
    for bad in report.bad_rows[:20]:
        print(f"{args.input}:{bad.line}: skipped: {bad.reason}", file=sys.stderr)
    if len(report.bad_rows) > 20:
        print(f"... and {len(report.bad_rows) - 20} more bad rows", file=sys.stderr)
    print(
        f"{report.rows_loaded} records -> {report.customers} customers "
        f"({len(report.bad_rows)} bad rows skipped) in {report.seconds_total:.1f}s; "
        f"wrote {args.output}"
    )
    return 0


# -- settings / airflow / demo -----------------------------------------------------------


def cmd_settings(args: argparse.Namespace) -> int:
    import os

    for setting in all_settings():
        value = os.environ.get(setting.env)
        if value and setting.secret:
            value = "***"
        print(f"{setting.env}={value if value is not None else ''}\n    {setting.doc}")
    get_settings()  # validates
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    import os
    import subprocess
    from pathlib import Path

    from omnicanal.orchestration.airflow_env import airflow_env, migrate_metadata_db

    settings = get_settings()
    migrate_metadata_db(settings)
    env = {**os.environ, **airflow_env(settings)}
    airflow = Path(sys.executable).parent / "airflow"
    return subprocess.run([str(airflow), *args.airflow_args], env=env).returncode


def cmd_env(args: argparse.Namespace) -> int:
    """Run a command with the warehouse up and dbt's and Airflow's variables set."""
    import contextlib
    import os
    import subprocess

    from omnicanal import warehouse
    from omnicanal.orchestration.airflow_env import airflow_env
    from omnicanal.orchestration.dbt import dbt_env

    settings = get_settings()
    command = [a for a in args.command_args if a != "--"] if args.command_args else []
    with contextlib.ExitStack() as stack:
        if command:
            # an embedded warehouse started for the command is stopped after it (`make
            # sql-lint` left one running); printed exports keep it up for what follows
            url, _ = stack.enter_context(warehouse.running(settings))
        else:
            url = warehouse.up(settings)
        if args.fresh_database:
            # A new, empty database on the same server: for tools whose result must not
            # depend on what earlier runs left (sqlfluff's dbt templater renders
            # is_incremental() branches differently once the models exist).
            url = warehouse.recreate_database(url, args.fresh_database)
            os.environ["OMNICANAL_WAREHOUSE_URL"] = url.url()
            settings = get_settings()
        env = {**os.environ, **airflow_env(settings), **dbt_env(settings)}
        if not command:
            for name in sorted({**airflow_env(settings), **dbt_env(settings)}):
                value = "***" if "PASSWORD" in name else env[name]
                print(f"export {name}={value}")
            return 0
        return subprocess.run(command, env=env).returncode


def cmd_demo(args: argparse.Namespace) -> int:
    from omnicanal.demo import run_demo

    return run_demo(get_settings(), people=args.people, seed=args.seed)


def cmd_ui(args: argparse.Namespace) -> int:
    from omnicanal.demo import run_ui

    return run_ui(get_settings())


def _source_names() -> list[str]:
    from omnicanal.channels import sources

    return [channel.name for channel in sources()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnicanal", description="Omnichannel customer data hub: extract, model, activate."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("warehouse", help="the Postgres warehouse (embedded by default)")
    p.add_argument("action", choices=["up", "down", "status", "url"])
    p.add_argument("--show-password", action="store_true", help="with url: do not mask it")
    p.set_defaults(func=cmd_warehouse)

    p = sub.add_parser("sandbox", help="the synthetic world and the APIs that emulate platforms")
    sp = p.add_subparsers(dest="action", required=True)
    w = sp.add_parser("world", help="generate a world and write it as JSON")
    w.add_argument("--people", type=int, default=500)
    w.add_argument("--seed", type=int, default=42)
    w.add_argument("-o", "--output", help="file to write (default: OMNICANAL_HOME/sandbox)")
    s = sp.add_parser("serve", help="serve every channel's emulated API over a world")
    s.add_argument("--world", help="a world file from `sandbox world` (default: generate)")
    s.add_argument("--people", type=int, default=500)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8787)
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("webhooks", help="the receiver of platforms that push events (WhatsApp)")
    sp = p.add_subparsers(dest="action", required=True)
    s = sp.add_parser("serve", help="receive, verify and durably store webhook deliveries")
    s.add_argument("--host", help="default: OMNICANAL_WEBHOOKS_HOST (127.0.0.1)")
    s.add_argument("--port", type=int, help="default: OMNICANAL_WEBHOOKS_PORT (8788)")
    p.set_defaults(func=cmd_webhooks)

    p = sub.add_parser("extract", help="run a source's tap into raw_<source>.* (incremental)")
    p.add_argument("source", help="a channel with a source: " + ", ".join(_source_names()))
    p.add_argument("--full-refresh", action="store_true", help="forget the saved state first")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("dbt", help="run dbt on the project with the warehouse's profile")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER, help="dbt arguments (default: build)")
    p.set_defaults(func=cmd_dbt)

    p = sub.add_parser("sync", help="reverse ETL: push dbt segments to destinations")
    sp = p.add_subparsers(dest="action", required=True)
    sp.add_parser("list", help="the syncs declared as dbt exposures")
    r = sp.add_parser("run", help="send what changed since the last run")
    r.add_argument("name", help="exposure name (or sync model name)")
    r.add_argument("--dry-run", action="store_true", help="count the changes, send nothing")
    r.add_argument(
        "--full-resync",
        action="store_true",
        help="send every row again (the destination lost what the ledger says it holds)",
    )
    f = sp.add_parser("forget", help="forget what the destination holds (it was replaced)")
    f.add_argument("name", help="exposure name (or sync model name)")
    r = sp.add_parser("plan", help="dry run: counts of adds, updates, removes and a sample")
    r.add_argument("name", help="exposure name (or sync model name)")
    r.add_argument("--json", action="store_true", help="print the plan as JSON")
    r = sp.add_parser("replay", help="resend the rows the destination refused (dead letters)")
    r.add_argument("name", help="exposure name (or sync model name)")
    r = sp.add_parser("status", help="last runs, pending rows and dead letters of the syncs")
    r.add_argument("name", nargs="?", help="one sync (default: all that ever ran)")
    r.add_argument("--runs", type=int, default=5, help="how many recent runs to show (5)")
    r.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_sync)

    from omnicanal.channels.whatsapp.cli import register as register_whatsapp

    register_whatsapp(sub)

    from omnicanal.privacy.cli import register as register_privacy

    register_privacy(sub)

    p = sub.add_parser("identity", help="identity resolution on anyone's data")
    sp = p.add_subparsers(dest="action", required=True)
    r = sp.add_parser(
        "resolve",
        help="CSV of records (record_id, source, email, phone, cpf, first_name, last_name, "
        "full_name, birth_date, city, postcode, address) -> record_id,customer_id",
    )
    r.add_argument("input", help="input CSV with a header row")
    r.add_argument("-o", "--output", required=True, help="CSV to write: record_id,customer_id")
    r.add_argument(
        "--schema",
        default="identity_cli",
        help="warehouse schema for the input and the identity tables; customer_ids persist "
        "there across runs (default: identity_cli)",
    )
    r.add_argument(
        "--fuzzy",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting of the fuzzy stage (var identity_fuzzy in dbt_project.yml) "
        "for this run, e.g. --fuzzy threshold_weight=5 --fuzzy one_to_one_across_sources=true",
    )
    e = sp.add_parser(
        "explain",
        help="why records are one customer: identifier edges, guards, fuzzy pair weights",
    )
    e.add_argument("key", help="a customer_id, a record id or SOURCE:RECORD_ID")
    e.add_argument(
        "--schema",
        default="identity_cli",
        help="schema of the identity tables (default identity_cli; the pipeline's: intermediate)",
    )
    e.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.set_defaults(func=cmd_identity)

    p = sub.add_parser("settings", help="every setting, its meaning and its current value")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("airflow", help="run the airflow CLI with this project's environment")
    p.add_argument("airflow_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_airflow)

    p = sub.add_parser("env", help="run a command with the warehouse up and its variables set")
    p.add_argument(
        "--fresh-database",
        metavar="NAME",
        help="drop and create the empty database NAME on the warehouse server and use it",
    )
    p.add_argument("command_args", nargs=argparse.REMAINDER, help="-- command and arguments")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("demo", help="the whole pipeline on embedded defaults, with a summary")
    p.add_argument("--people", type=int, default=None, help="default: OMNICANAL_SANDBOX_PEOPLE")
    p.add_argument("--seed", type=int, default=None, help="default: OMNICANAL_SANDBOX_SEED")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ui", help="warehouse, sandbox and the Airflow UI until Ctrl-C")
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        level = "DEBUG" if args.verbose else get_settings().log_level
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # One line per HTTP request is noise at INFO; our own modules say what matters.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
        return args.func(args)
    except OmnicanalError as exc:
        print(f"omnicanal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
