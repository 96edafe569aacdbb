"""``make demo`` and ``make ui``: the whole pipeline on embedded defaults.

The demo starts what it needs (the embedded warehouse unless one is configured, the
sandbox in this process), runs the Airflow DAG once with ``dag.test()`` (a real
Airflow run: every task, Cosmos's dbt tasks included), prints a summary and stops
what it started.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from psycopg import sql

from omnicanal import warehouse
from omnicanal.channels import destinations, sources
from omnicanal.config import Settings
from omnicanal.errors import OmnicanalError
from omnicanal.extract import reset_state

PIPELINE_DAG = "omnicanal_pipeline"


class Progress:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step_started = self.started

    def step(self, message: str) -> None:
        self.step_started = time.monotonic()
        print(f"==> {message}", flush=True)

    def done(self, detail: str = "") -> None:
        took = time.monotonic() - self.step_started
        print(f"    done in {took:.1f}s{': ' + detail if detail else ''}", flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


#: What the pipeline writes in the warehouse besides raw_<source>: models, dbt's test
#: audit, the activation ledger.
PIPELINE_SCHEMAS = (
    "staging",
    "intermediate",
    "marts",
    "activation",
    "dbt_test__audit",
    "omnicanal_activation",
)


def clear_demo_data(settings: Settings) -> list[str]:
    """Start a demo over: its world is generated now, so what an earlier demo left (the
    rows of another world in raw_*, the models and the ledger built on them, the
    emulated destinations' accounts) would mix two worlds in every figure. Only on the
    embedded warehouse, which nothing but demos and ``make ui`` write; a configured
    warehouse is never touched. Returns the schemas dropped."""
    if not settings.uses_embedded_warehouse:
        return []
    wanted = [channel.raw_schema for channel in sources()] + list(PIPELINE_SCHEMAS)
    with warehouse.connect(settings) as conn:
        schemata = conn.execute("select schema_name from information_schema.schemata")
        existing = {row[0] for row in schemata}
        dropped = [schema for schema in wanted if schema in existing]
        for schema in dropped:
            conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(schema)))
        conn.commit()
    # the emulated destinations' accounts (a world file of `sandbox serve` stays)
    for state in settings.sandbox_dir.glob("*.json"):
        if state.name != settings.world_path.name:
            state.unlink()
    return dropped


def start_sandbox(settings: Settings, people: int, seed: int, stack: ExitStack):
    """Generate the world and serve it in this process until ``stack`` closes."""
    from omnicanal.sandbox.app import SandboxServer, emulation_options
    from omnicanal.sandbox.world import generate_world

    world = generate_world(people, seed)
    options = emulation_options(settings)
    # An emulated destination without its state file is a new account: whatever the
    # ledger remembers of an older one is gone, so its syncs must start from scratch.
    _forget_syncs_to(
        settings,
        {
            name
            for name, option in options.items()
            if option.get("state_path") and not Path(option["state_path"]).exists()
        },
    )
    server = SandboxServer(world, host=settings.sandbox_host, port=settings.sandbox_port, **options)
    stack.enter_context(server)
    return world, server


def start_webhooks(settings: Settings, server, stack: ExitStack) -> dict[str, dict]:
    """The webhook receiver, unless one answers already, and the emulations' deliveries to
    it: a webhook-fed source (WhatsApp) has nothing to extract until the platform posts.

    The receiver started here keeps a fresh store under the home's ``demo/`` folder (the
    demo's world is new, and its extracts start from scratch) until ``stack`` closes.
    A receiver that answers already is used only if it keeps one of this home's stores
    (``make ui``'s, or a demo's): another home's would hand the taps its own world's
    events, so that is an error naming the port setting.
    """
    import shutil

    import httpx

    from omnicanal.webhooks.server import WebhooksProcess, channels_from_settings
    from omnicanal.webhooks.store import store_id

    fed = [channel for channel in sources() if channel.source.delivery == "webhook"]
    if not fed:
        return {}
    store = settings.home / "demo" / "webhooks"
    try:
        answer = httpx.get(f"{settings.webhooks_url}/healthz", timeout=2)
        running = answer.status_code == 200
    except httpx.HTTPError:
        running = False
    if running:
        try:
            theirs = answer.json().get("store")
        except (ValueError, AttributeError):
            theirs = None
        ours = {store_id(settings.webhooks_dir), store_id(store)} - {None}
        if theirs not in ours:
            raise OmnicanalError(
                f"OMNICANAL_WEBHOOKS_PORT: a webhook receiver that keeps none of this "
                f"home's stores ({settings.webhooks_dir}, {store}) answers on "
                f"{settings.webhooks_url} (its store: {theirs or 'not reported'}); its "
                f"events are another world's. Stop it, or set OMNICANAL_WEBHOOKS_PORT to "
                f"a free port"
            )
    else:
        shutil.rmtree(store, ignore_errors=True)
        (settings.home / "logs").mkdir(parents=True, exist_ok=True)
        receiver = WebhooksProcess(
            store,
            channels_from_settings(settings),
            read_token=settings.webhooks_read_token,
            host=settings.webhooks_host,
            port=settings.webhooks_port,
            log_path=settings.home / "logs" / "webhooks-demo.log",
        )
        stack.enter_context(receiver)
    return {
        channel.name: server.app.state.emulators[channel.name].deliver().as_dict()
        for channel in fed
        if hasattr(server.app.state.emulators.get(channel.name), "deliver")
    }


def _forget_syncs_to(settings: Settings, destinations: set[str]) -> None:
    from omnicanal.activation.definitions import load_definitions
    from omnicanal.activation.ledger import forget

    definitions = load_definitions(settings.dbt_project_dir).values()
    with warehouse.connect(settings) as conn:
        for definition in definitions:
            if definition.destination in destinations:
                forget(conn, definition.name)


def load_dag(settings: Settings, dag_id: str = PIPELINE_DAG):
    """Import a DAG file of the project the way the scheduler would, and return the DAG."""
    path = settings.dags_dir / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"omnicanal_dags_{dag_id}", path)
    if spec is None or spec.loader is None:
        raise OmnicanalError(f"cannot import the DAG file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.dag


def prepare_airflow(settings: Settings) -> None:
    """Point this process's Airflow at the project and migrate its metadata DB.

    Must run before anything imports airflow: Airflow reads its configuration once,
    at import.
    """
    from omnicanal.orchestration.airflow_env import airflow_env, migrate_metadata_db

    os.environ.update(airflow_env(settings))
    migrate_metadata_db(settings)


def run_pipeline(settings: Settings, log_path: Path | None = None):
    """Parse the pipeline DAG and run it once with ``dag.test()``; returns the DagRun.

    With ``log_path``, everything Airflow, Cosmos and dbt print (parse and run) goes to
    that file and the terminal shows one line per finished task.
    """
    if log_path is None:
        return load_dag(settings).test()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    started = time.monotonic()

    def line(mark: str):
        def callback(context) -> None:
            task_id = context["ti"].task_id
            terminal.write(f"    {mark} {time.monotonic() - started:6.1f}s  {task_id}\n")

        return callback

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            dag = load_dag(settings)
            for task in dag.tasks:
                task.on_success_callback = [line("ok    ")]
                task.on_failure_callback = [line("FAILED")]
            return dag.test()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            terminal.close()


def summary(settings: Settings, server=None) -> dict:
    from omnicanal.extract import raw_counts

    out: dict = {"raw_rows": {}}
    for source in sources():
        for stream, count in raw_counts(settings, source).items():
            out["raw_rows"][f"{source.raw_schema}.{stream}"] = count
    with warehouse.connect(settings) as conn:
        for key, schema, table in (
            ("customers", "marts", "dim_customers"),
            ("segment_recent_buyers", "activation", "sync_mailchimp__recent_buyers"),
        ):
            try:
                out[key] = conn.execute(
                    sql.SQL("select count(*) from {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                ).fetchone()[0]
            except Exception:  # noqa: BLE001 - a missing model is shown as missing
                conn.rollback()
                out[key] = None
        try:
            out["last_sync_runs"] = conn.execute(
                """select distinct on (sync_name) sync_name, status, inserted, updated, removed,
                          unchanged, failed
                   from omnicanal_activation.sync_runs order by sync_name, run_id desc"""
            ).fetchall()
        except Exception:  # noqa: BLE001 - no sync ran yet
            conn.rollback()
            out["last_sync_runs"] = []
    out["sync_truths"] = sync_truths(server) if server is not None else []
    out["kpis"] = []
    if server is not None:
        with warehouse.connect(settings) as conn:
            try:
                out["kpis"] = kpi_table(conn, server.app.state.world)
            except Exception:  # noqa: BLE001 - a missing mart is shown as missing
                conn.rollback()
    return out


#: The demo's KPI table: (channel, KPI) and the SQL that reads it from the KPI marts
#: over the world's whole history (month rows summed: every period is in one month).
KPI_QUERIES = {
    "conversations": """select channel, count(*)::float8, 'conversations'
        from marts.kpi_conversations group by channel""",
    "response": """select channel,
            percentile_cont(0.5) within group (order by first_response_minutes),
            'median first response (min)'
        from marts.kpi_conversations group by channel""",
    "resolution": """select channel,
            percentile_cont(0.5) within group (order by resolution_minutes),
            'median resolution (min)'
        from marts.kpi_conversations group by channel""",
    "csat": """select 'support', sum(good_ratings)::float8 / nullif(sum(ratings), 0), 'CSAT'
        from marts.kpi_csat where grain = 'month'""",
    "open": """select channel, sum(unique_opens)::float8 / nullif(sum(emails_delivered), 0),
            'open rate'
        from marts.kpi_engagement
        where grain = 'month' and channel = 'email' group by channel""",
    "click": """select channel, sum(unique_clicks)::float8 / nullif(sum(emails_delivered), 0),
            'click rate'
        from marts.kpi_engagement
        where grain = 'month' and channel = 'email' group by channel""",
    "conversion": """select channel,
            sum(converted_touches)::float8 / nullif(sum(touches), 0), 'conversion rate'
        from marts.kpi_conversion where grain = 'month' group by channel""",
}


def kpi_table(conn, world) -> list[tuple[str, str, float | None, float | None]]:
    """(channel, KPI, the marts' value, the world's) for the demo summary. Conversion
    ties touches to orders through identity resolution, so the world's own value is
    left out (tests/dbt/test_kpi_marts.py bounds it)."""
    from omnicanal.sandbox.kpi_truth import channel_kpis

    truth = channel_kpis(world)
    rows = []
    for query in KPI_QUERIES.values():
        for channel, value, kpi in conn.execute(query):
            measured = None if value is None else round(float(value), 4)
            rows.append((channel, kpi, measured, truth.get((channel, kpi))))
    return sorted(rows)


def kpi_chart(table: list[tuple[str, str, float | None, float | None]], path: Path) -> Path:
    """A PNG of conversion rate and median first-response time per channel (the marts'
    values, the world's beside them where it has one): what people look at first."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    panels = (
        ("conversion rate", "conversion rate (touch, then an order within 7 days)"),
        ("median first response (min)", "median first response (minutes)"),
    )
    figure, axes = pyplot.subplots(1, len(panels), figsize=(11, 4))
    for axis, (kpi, title) in zip(axes, panels, strict=True):
        rows = [(c, m, t) for c, k, m, t in table if k == kpi and m is not None]
        channels = [c for c, _, _ in rows]
        positions = range(len(rows))
        axis.barh([p + 0.2 for p in positions], [m for _, m, _ in rows], 0.4, label="marts")
        if any(t is not None for _, _, t in rows):
            axis.barh(
                [p - 0.2 for p in positions],
                [t or 0 for _, _, t in rows],
                0.4,
                label="world (ground truth)",
            )
            axis.legend(loc="lower right", fontsize=8)
        axis.set_yticks(list(positions), channels)
        axis.set_title(title, fontsize=10)
    figure.suptitle("omnicanal demo: KPIs per channel")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def sync_truths(server) -> list:
    """What each destination's syncs left in its emulation, against the world's truth."""
    world = server.app.state.world
    found = []
    for channel in destinations():
        emulator = server.app.state.emulators.get(channel.name)
        if channel.sync_truths is not None and emulator is not None:
            found.extend(channel.sync_truths(world, emulator))
    return found


def _task_table(dagrun) -> list[str]:
    lines = []
    for ti in sorted(dagrun.get_task_instances(), key=lambda t: (t.start_date or 0, t.task_id)):
        took = ""
        if ti.start_date and ti.end_date:
            took = f"{(ti.end_date - ti.start_date).total_seconds():6.1f}s"
        lines.append(f"    {ti.state!s:<10} {took:>8}  {ti.task_id}")
    return lines


def run_demo(settings: Settings, people: int | None = None, seed: int | None = None) -> int:
    people = people or settings.sandbox_people
    seed = settings.sandbox_seed if seed is None else seed
    progress = Progress()
    with ExitStack() as stack:
        progress.step("warehouse")
        url, started_here = stack.enter_context(warehouse.running(settings))
        progress.done(url.redacted() + (" (started)" if started_here else " (already running)"))

        dropped = clear_demo_data(settings)
        if dropped:
            print(f"    an earlier demo's data cleared: {', '.join(dropped)}", flush=True)

        progress.step(f"sandbox: a world of {people} people (seed {seed})")
        world, server = start_sandbox(settings, people, seed, stack)
        progress.done(
            f"{server.url} serves " + ", ".join(piece.describe() for piece in world.slices.values())
        )

        if any(channel.source.delivery == "webhook" for channel in sources()):
            progress.step(f"webhooks: the platforms post to the receiver, {settings.webhooks_url}")
            deliveries = start_webhooks(settings, server, stack)
            progress.done(
                "; ".join(
                    f"{name}: {d['events']} events in {d['delivered']} notifications "
                    f"({d['duplicates']} delivered twice, {d['retries']} retried)"
                    for name, d in deliveries.items()
                )
            )

        # Each demo serves a world generated now, so "recent" means recent to the clock;
        # that is a new snapshot of every source, so extract it whole, not from the bookmark.
        for source in sources():
            reset_state(settings, source.name)

        progress.step("airflow metadata database")
        prepare_airflow(settings)
        progress.done(str(settings.airflow_home))

        log_path = settings.home / "logs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.log"
        progress.step(f"pipeline: dag.test() of {PIPELINE_DAG} (task logs: {log_path})")
        dagrun = run_pipeline(settings, log_path)
        progress.done(f"run state {dagrun.state}")
        if str(dagrun.state) != "success":
            for line in _task_table(dagrun):
                print(line)
            print(f"the pipeline failed; the task logs are in {log_path}", file=sys.stderr)
            return 1

        facts = summary(settings, server)
        print()
        print("summary")
        for table, count in facts["raw_rows"].items():
            print(f"  rows in {table:<28} {count}")
        print(f"  customers (dim_customers)          {facts['customers']}")
        print(f"  recent buyers segment              {facts['segment_recent_buyers']}")
        for name, status, ins, upd, rem, same, failed in facts["last_sync_runs"]:
            print(
                f"  sync {name} ({status}): {ins} inserted, {upd} updated, {rem} removed, "
                f"{same} unchanged, {failed} failed"
            )
        print("  channel KPIs, the marts' value against the world's own:")
        for channel, kpi, measured, truth in facts["kpis"]:
            shown = "-" if truth is None else f"{truth:g}"
            print(f"    {channel:<10} {kpi:<30} {measured!s:>10}  (world: {shown})")
        if facts["kpis"]:
            chart = kpi_chart(facts["kpis"], settings.home / "demo" / "kpis.png")
            print(f"  chart of conversion and response time per channel: {chart}")
        print("  each destination against the world's ground truth (held / expected / both):")
        for truth in facts["sync_truths"]:
            print(
                f"    {truth.sync:<32} {len(truth.held):>5} / {len(truth.expected):>5} / "
                f"{truth.both:>5}  {truth.what}"
            )
        print(f"  time taken                         {progress.elapsed:.1f}s")
    print()
    print("Open the Airflow UI with `make ui` (http://127.0.0.1:8080, the login is printed")
    print("by Airflow and kept in .omnicanal/airflow/simple_auth_manager_passwords.json*).")
    return 0


def run_ui(settings: Settings) -> int:
    """Warehouse, sandbox and ``airflow standalone`` until Ctrl-C; stops all of it."""
    import signal
    import subprocess

    from omnicanal.orchestration.airflow_env import airflow_env

    def _interrupt(signum, frame):  # SIGTERM stops it the way Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    with ExitStack() as stack:
        stack.enter_context(warehouse.running(settings))
        _, server = start_sandbox(settings, settings.sandbox_people, settings.sandbox_seed, stack)
        start_webhooks(settings, server, stack)
        prepare_airflow(settings)
        env = {**os.environ, **airflow_env(settings)}
        print(f"sandbox on {server.url}; starting Airflow (about 30 s) on http://127.0.0.1:8080")
        airflow = Path(sys.executable).parent / "airflow"
        proc = subprocess.Popen([str(airflow), "standalone"], env=env, start_new_session=True)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            return 0
