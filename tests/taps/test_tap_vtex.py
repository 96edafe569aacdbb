"""tap-vtex against the VTEX emulator of the omnicanal sandbox, over real HTTP.

One ``SandboxServer`` (a 60-person world: 64 orders, 26 CL profiles) serves the module.
The SDK's standard tap tests run against it with pages small enough that the tap must
split its creation-date windows; the behaviour tests check what the pipeline relies on:
every order exactly once whatever the window splits, the real 30-page limit never hit,
incremental state on ``lastChange`` / ``updatedIn``, retries on 429/5xx/timeouts, and
clear failures for bad credentials and bad config. Unit tests pin the window splitting
and scroll paging on their own. Some runs go through the ``tap-vtex`` executable, as the
pipeline calls it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from taprun import (
    assert_conformed_as_the_sdk_would,
    free_port,
    run_tap,
    timeless_state,
)

from omnicanal.channels.vtex import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN
from omnicanal.channels.vtex.emulation import VtexEmulator
from omnicanal.sandbox.app import SandboxServer
from omnicanal.sandbox.world import World, generate_world
from omnicanal_tapkit.streams import ProxiesOnceSession
from tap_vtex import paging, streams
from tap_vtex.errors import VtexConnectionError, VtexError, VtexRetriesExhaustedError
from tap_vtex.paging import (
    DateWindowPaginator,
    KeysetSearchPaginator,
    ScrollPaginator,
    SearchPage,
    Window,
)
from tap_vtex.tap import TapVtex

PEOPLE = 60
SEED = 20241001
AS_OF = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-vtex")


# get_tap_test_class needs the config (hence the URL) when the class is built, at import.
SANDBOX_PORT = free_port()
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
BASE_CONFIG: dict[str, Any] = {
    "api_url": SANDBOX_URL,
    "app_key": SANDBOX_APP_KEY,
    "app_token": SANDBOX_APP_TOKEN,
    "start_date": "2000-01-01T00:00:00Z",
}


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[SandboxServer]:
    world = generate_world(PEOPLE, seed=SEED, as_of=AS_OF)
    with SandboxServer(world, port=SANDBOX_PORT) as server:
        yield server


@pytest.fixture
def vtex(sandbox: SandboxServer) -> Iterator[VtexEmulator]:
    """The VTEX emulator, with no fault left queued and the default rate limit after."""
    emulator: VtexEmulator = sandbox.app.state.vtex
    yield emulator
    emulator.clear_faults()
    emulator.set_rate_limit(6000)


@pytest.fixture
def world(sandbox: SandboxServer) -> World:
    return sandbox.app.state.world


# --- the SDK's standard tests ---------------------------------------------------------

# All standard tests run; none is skipped. 4 orders a page and at most 3 pages a window
# make the tap split its creation-date windows several times (64 orders), and 10
# profiles a scroll page make it follow the scroll token.
TestTapVtexStandard = get_tap_test_class(
    TapVtex,
    config={**BASE_CONFIG, "page_size": 4, "max_list_pages": 3, "scroll_size": 10},
    suite_config=SuiteConfig(max_records_limit=None),
)


# --- helpers ---------------------------------------------------------------------------


class SyncResult:
    """What one tap run wrote: records per stream, and the last STATE."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {"customers": [], "orders": []}
        self.state: dict[str, Any] = {}
        for message in messages:
            if message["type"] == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])
            elif message["type"] == "STATE":
                self.state = message["value"]

    def ids(self, stream: str) -> list[str]:
        key = "orderId" if stream == "orders" else "id"
        return [record[key] for record in self.records[stream]]

    def bookmark(self, stream: str) -> str:
        return self.state["bookmarks"][stream]["replication_key_value"]


def sync(config: dict[str, Any], state: dict[str, Any] | None = None) -> SyncResult:
    out = io.StringIO()
    with redirect_stdout(out):
        TapVtex(config={**BASE_CONFIG, **config}, state=state).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def sync_cut_after_order_requests(requests_served: int, config: dict[str, Any]) -> SyncResult:
    """A sync whose connection drops after ``requests_served`` requests to the OMS orders
    API (list pages and details): what it wrote before failing."""
    real_send = requests.Session.send
    order_requests = {"n": 0}

    def flaky_send(session, request, **kwargs):
        if "/api/oms/pvt/orders" in str(request.url):
            order_requests["n"] += 1
            if order_requests["n"] > requests_served:
                raise requests.exceptions.ConnectionError("connection reset by peer")
        return real_send(session, request, **kwargs)

    out = io.StringIO()
    with (
        mock.patch.object(requests.Session, "send", flaky_send),
        redirect_stdout(out),
        pytest.raises(VtexConnectionError),
    ):
        TapVtex(config={**BASE_CONFIG, **config}).sync_all()
    return SyncResult([json.loads(line) for line in out.getvalue().splitlines() if line])


def run_executable(
    tmp_path: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return run_tap(TAP_EXECUTABLE, tmp_path, config, *args, timeout=60)


# --- unit: window splitting and scroll paging --------------------------------------------


class FakeResponse:
    """Just what the paginators read: the JSON body and the headers."""

    def __init__(self, body: Any, headers: dict[str, str] | None = None) -> None:
        self._body, self.headers = body, headers or {}

    def json(self) -> Any:
        return self._body


def test_window_paginator_splits_until_every_window_fits_and_covers_the_range() -> None:
    """Orders evenly spread: 1 per minute over 10 hours, 4 a page, 3 pages a window."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = start + timedelta(hours=10) - timedelta(milliseconds=1)
    moments = [start + timedelta(minutes=m) for m in range(600)]
    paginator = DateWindowPaginator(start, end, max_pages=3)
    read: list[datetime] = []
    requests_made = 0
    while not paginator.finished:
        window = paginator.current_value
        inside = [m for m in moments if window.start <= m <= window.end]
        pages = -(-len(inside) // 4)
        response = FakeResponse(
            {"paging": {"total": len(inside), "pages": pages, "currentPage": window.page,
                        "perPage": 4}}
        )  # fmt: skip
        requests_made += 1
        assert window.page <= 3, "asked for a page the list would refuse"
        if not (window.page == 1 and pages > 3):
            read += inside[(window.page - 1) * 4 : window.page * 4]
        paginator.advance(response)
    assert read == moments  # every order once, oldest first
    assert paginator.splits > 0
    assert requests_made < 600 / 4 * 2  # splitting costs a fraction of the pages


def test_window_halves_are_adjacent_millisecond_ranges() -> None:
    window = Window(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC))
    left, right = window.halves()
    assert left.start == window.start and right.end == window.end
    assert right.start - left.end == timedelta(milliseconds=1)
    assert left.filter_value() == (
        "creationDate:[2024-01-01T00:00:00.000Z TO 2024-01-01T00:00:00.500Z]"
    )


def test_an_unsplittable_window_that_overflows_is_a_clear_error() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    paginator = DateWindowPaginator(moment, moment, max_pages=30)
    overflowing = FakeResponse({"paging": {"total": 3100, "pages": 31, "currentPage": 1,
                                           "perPage": 100}})  # fmt: skip
    with pytest.raises(VtexError, match="single millisecond"):
        paginator.advance(overflowing)


def test_scroll_paginator_carries_the_token_until_an_empty_page() -> None:
    paginator = ScrollPaginator()
    paginator.advance(FakeResponse([{"id": "a"}], {"X-VTEX-MD-TOKEN": "tok"}))
    assert paginator.current_value == ("tok", 1)
    paginator.advance(FakeResponse([{"id": "b"}]))  # later pages need not repeat it
    assert paginator.current_value == ("tok", 2)
    paginator.advance(FakeResponse([]))
    assert paginator.finished


def test_keyset_search_moves_the_lower_bound_and_steps_only_through_ties(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paging, "SEARCH_PAGE_SIZE", 3)
    paginator = KeysetSearchPaginator("2024-01-01T00:00:00.000Z")
    assert paginator.current_value.rest_range == "resources=0-3"
    page = [{"updatedIn": "2024-01-02"}, {"updatedIn": "2024-01-03"}, {"updatedIn": "2024-01-04"}]
    paginator.advance(FakeResponse(page))
    assert paginator.current_value == SearchPage("2024-01-04", 0)
    ties = [{"updatedIn": "2024-01-04"}] * 3  # a whole page on one value
    paginator.advance(FakeResponse(ties))
    assert paginator.current_value == SearchPage("2024-01-04", 3)
    assert paginator.current_value.rest_range == "resources=3-6"
    paginator.advance(FakeResponse([{"updatedIn": "2024-01-05"}]))  # short page: the end
    assert paginator.finished


# --- behaviour ---------------------------------------------------------------------------


def test_every_record_arrives_once_and_the_30_page_limit_is_never_hit(
    tmp_path: Path, world: World, vtex: VtexEmulator
) -> None:
    """Through the executable: 1 order a page makes every window beyond 30 orders split
    against the emulator's real refusal of page 31 (any such request would fail the run)."""
    before = vtex.request_count
    result = run_executable(tmp_path, {**BASE_CONFIG, "page_size": 1, "scroll_size": 7})
    assert result.returncode == 0, result.stderr[-3000:]
    synced = SyncResult([json.loads(line) for line in result.stdout.splitlines() if line])
    store = world.slices["vtex"]
    for stream, expected in (
        ("orders", {o["orderId"] for o in store.orders}),
        ("customers", {p["id"] for p in store.profiles}),
    ):
        ids = synced.ids(stream)
        assert not [i for i, n in Counter(ids).items() if n > 1], stream
        assert set(ids) == expected, stream
    assert len(store.orders) > 30  # so the first window had to be split
    # list pages + one detail per order + scroll pages
    assert vtex.request_count - before > 2 * len(store.orders)
    detail = synced.records["orders"][0]
    assert detail["clientProfileData"]["email"].endswith("ct.vtex.com.br")
    assert detail["items"] and "lastChange" in detail


def test_bookmarks_are_the_latest_changes(world: World) -> None:
    result = sync({"page_size": 50})
    store = world.slices["vtex"]
    assert result.bookmark("orders") == max(o["lastChange"] for o in store.orders)
    assert result.bookmark("customers") == max(p["updatedIn"] for p in store.profiles)
    stamps = [r["updatedIn"] for r in result.records["customers"]]
    assert stamps == sorted(stamps)  # scrolled by updatedIn: resumable checkpoints


def test_incremental_sync_gets_only_what_changed(vtex: VtexEmulator, world: World) -> None:
    first = sync({"page_size": 50})
    second = sync({"page_size": 50}, state=first.state)
    # inclusive bounds: at most the records on the bookmark come back
    assert set(second.ids("orders")) <= {
        r["orderId"] for r in first.records["orders"] if r["lastChange"] == first.bookmark("orders")
    }
    assert set(second.ids("customers")) <= {
        r["id"] for r in first.records["customers"] if r["updatedIn"] == first.bookmark("customers")
    }

    # one order placed two weeks ago is invoiced now; one profile changes its name
    recent = max(world.slices["vtex"].orders, key=lambda o: o["creationDate"])
    vtex.touch_order(recent["orderId"], status="invoiced", statusDescription="Faturado")
    profile = world.slices["vtex"].profiles[0]
    vtex.touch_profile(profile["id"], firstName="Renomeada")

    third = sync({"page_size": 50}, state=second.state)
    assert recent["orderId"] in third.ids("orders")
    assert len(third.ids("orders")) <= 2
    changed = next(r for r in third.records["customers"] if r["id"] == profile["id"])
    assert changed["firstName"] == "Renomeada"
    assert third.bookmark("customers") == changed["updatedIn"]


def test_an_interrupted_sync_resumes_from_its_last_state(world: World) -> None:
    """The connection drops while orders are read (the second stream, after the
    profiles); the next run, from the last STATE, reads every order and no profile again
    but those on the bookmark."""
    config = {"page_size": 10, "scroll_size": 10, "max_retries": 0}
    interrupted = sync_cut_after_order_requests(5, config)
    store = world.slices["vtex"]
    orders = {o["orderId"] for o in store.orders}
    assert 0 < len(interrupted.ids("orders")) < len(orders)
    assert set(interrupted.ids("customers")) == {p["id"] for p in store.profiles}

    resumed = sync(config, state=interrupted.state)
    assert set(interrupted.ids("orders")) | set(resumed.ids("orders")) == orders
    on_bookmark = {
        r["id"]
        for r in interrupted.records["customers"]
        if r["updatedIn"] == interrupted.bookmark("customers")
    }
    assert set(resumed.ids("customers")) <= on_bookmark


def test_an_interrupted_order_walk_resumes_after_the_last_window_read(
    world: World, vtex: VtexEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders come by creation date, so their bookmark waits for the walk's end; the
    state keeps ``walked_to``, the end of the last window read whole, and the next run
    walks on from there: no order created up to it is asked for again."""
    monkeypatch.setattr(streams.OrdersStream, "STATE_MSG_FREQUENCY", 1)
    # 4 orders a page, 3 pages a window: the 64 orders take several windows
    config = {"page_size": 4, "max_list_pages": 3, "max_retries": 0}
    interrupted = sync_cut_after_order_requests(40, config)
    walked_to = datetime.fromisoformat(interrupted.state["bookmarks"]["orders"]["walked_to"])

    def created(order: dict[str, Any]) -> datetime:
        head, _, rest = order["creationDate"].partition(".")
        return datetime.fromisoformat(f"{head}.{rest[:3]}+00:00")  # VTEX filters by the ms

    orders = {o["orderId"]: created(o) for o in world.slices["vtex"].orders}
    walked = {order for order, at in orders.items() if at <= walked_to}
    read = set(interrupted.ids("orders"))
    assert walked and walked <= read < set(orders)

    listed: list[str] = []
    real_get = streams.OrdersStream.get_json

    def get_json(stream, path, context=None):
        listed.append(path.rsplit("/", 1)[-1])
        return real_get(stream, path, context)

    # between the runs, an order of a window already read changes, then one still to read
    changed_early = min(walked)
    vtex.touch_order(changed_early, status="canceled", at=datetime.now(UTC))
    later = min(set(orders) - read)
    vtex.touch_order(later, at=datetime.now(UTC) + timedelta(seconds=1))
    with mock.patch.object(streams.OrdersStream, "get_json", get_json):
        resumed = sync(config, state=interrupted.state)
    assert not walked & set(listed), "orders read before the interruption were asked again"
    assert read | set(resumed.ids("orders")) == set(orders)
    assert "walked_to" not in resumed.state["bookmarks"]["orders"]
    # the bookmark stays at the walk's beginning, so the next run reads the early change
    # (a lookback over the whole history: the world's orders are older than 30 days)
    signpost = interrupted.state["bookmarks"]["orders"]["replication_key_signpost"]
    assert resumed.bookmark("orders") <= signpost
    after = sync({**config, "order_lookback_days": 3650}, state=resumed.state)
    assert changed_early in after.ids("orders")


def test_incremental_customers_search_by_keyset_and_miss_none(
    vtex: VtexEmulator, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 profiles change, 7 of them in the same millisecond, read 5 a page: all arrive,
    through search (the scroll is never opened again)."""
    first = sync({"page_size": 50})
    profiles = world.slices["vtex"].profiles
    same_moment = datetime.fromisoformat(first.bookmark("customers")) + timedelta(seconds=1)
    for index, profile in enumerate(profiles[:12]):
        at = same_moment if index < 7 else same_moment + timedelta(seconds=index)
        vtex.touch_profile(profile["id"], at=at, lastName=f"Mudou {index}")

    async def no_scroll(request, entity):
        raise AssertionError("an incremental sync must not scroll")

    monkeypatch.setattr(vtex, "scroll", no_scroll)
    monkeypatch.setattr(paging, "SEARCH_PAGE_SIZE", 5)
    second = sync({"page_size": 50}, state=first.state)
    got = {r["id"]: r["lastName"] for r in second.records["customers"]}
    assert {p["id"] for p in profiles[:12]} <= set(got)
    assert all(got[p["id"]].startswith("Mudou") for p in profiles[:12])
    stamps = [r["updatedIn"] for r in second.records["customers"]]
    assert stamps == sorted(stamps)
    assert second.bookmark("customers") == max(p["updatedIn"] for p in profiles)


def test_start_date_limits_the_first_sync(world: World) -> None:
    orders = sorted(world.slices["vtex"].orders, key=lambda o: o["creationDate"])
    start = orders[len(orders) // 2]["creationDate"]
    result = sync({"start_date": start, "page_size": 50})
    expected = {o["orderId"] for o in orders if o["creationDate"] >= start}
    assert set(result.ids("orders")) == expected


def test_429_5xx_and_timeouts_are_retried_and_the_sync_completes(
    world: World, vtex: VtexEmulator
) -> None:
    vtex.fail_next(1, status=429)  # Retry-After: 1
    vtex.fail_next(1, status=503)
    vtex.stall_next(1, seconds=3)
    started = time.monotonic()
    result = sync({"page_size": 50, "request_timeout": 1})
    assert time.monotonic() - started >= 1.0, "Retry-After was not honoured"
    assert vtex.faults.pending == 0
    assert set(result.ids("orders")) == {o["orderId"] for o in world.slices["vtex"].orders}


def test_retries_have_a_limit(vtex: VtexEmulator) -> None:
    vtex.fail_next(3, status=500)
    with pytest.raises(VtexRetriesExhaustedError, match=r"HTTP 500 .*2 attempt"):
        sync({"max_retries": 1})


def test_a_server_that_never_answers_in_time_is_a_clear_error(vtex: VtexEmulator) -> None:
    vtex.stall_next(2, seconds=2)
    with pytest.raises(VtexConnectionError, match=r"did not answer .* within 1 s"):
        sync({"max_retries": 1, "request_timeout": 1})


def test_a_listed_order_without_detail_fails_the_run_instead_of_being_skipped(
    vtex: VtexEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OMS list is an index that can lag the orders: never move a bookmark past one."""
    from fastapi.responses import JSONResponse

    from omnicanal.channels.vtex.emulation import oms_body

    async def missing(request, order_id):
        return JSONResponse(oms_body("Order not found", "OMS002"), 404)

    monkeypatch.setattr(vtex, "get_order", missing)
    with pytest.raises(VtexError, match=r"listed order .* but has no detail .* run the extract"):
        sync({"page_size": 50})


def test_bad_credentials_fail_with_a_clear_message_and_no_secret(tmp_path: Path) -> None:
    wrong = "WRONGTOKEN" + "Q" * 60
    result = run_executable(tmp_path, {**BASE_CONFIG, "app_token": wrong})
    assert result.returncode != 0
    # the first request (OMS or Master Data) is refused, in that API's words
    assert "VTEX rejected the app key/token (HTTP 401: Unauthorized" in result.stderr
    assert "check the `app_key` and `app_token` settings" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout
    assert SANDBOX_APP_KEY not in result.stderr + result.stdout


def test_a_role_without_the_resource_names_it(vtex: VtexEmulator) -> None:
    vtex.add_app_key("vtexappkey-omnicanal-NOOMS", "N" * 128, ("masterdata",))
    with pytest.raises(VtexError, match=r"HTTP 403.*License Manager resource OMS"):
        sync({"app_key": "vtexappkey-omnicanal-NOOMS", "app_token": "N" * 128})


def test_server_down_names_the_url(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = run_executable(tmp_path, {**BASE_CONFIG, "api_url": down, "max_retries": 0})
    assert result.returncode != 0
    assert f"Could not connect to VTEX at {down}/api/" in result.stderr
    assert "connection refused" in result.stderr


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"page_size": 101}, "page_size"),
        ({"max_list_pages": 31}, "max_list_pages"),
        ({"scroll_size": 1001}, "scroll_size"),
        ({"api_url": None}, "api_url"),
        ({"api_url": "http://host/api/oms"}, "api_url"),
        ({"api_url": None, "account": "not an account!"}, "account"),
        ({"app_key": None}, "app_key"),
        ({"app_token": None}, "app_token"),
    ],
)
def test_bad_config_is_rejected_naming_the_setting(config: dict[str, Any], setting: str) -> None:
    merged = {k: v for k, v in {**BASE_CONFIG, **config}.items() if v is not None}
    with pytest.raises(ConfigValidationError) as raised:
        TapVtex(config=merged)
    assert any(setting in error for error in raised.value.errors), raised.value.errors


def test_account_builds_the_vtex_host() -> None:
    from tap_vtex.client import vtex_base_url

    assert vtex_base_url({"account": "acme"}) == "https://acme.vtexcommercestable.com.br"
    assert (
        vtex_base_url({"account": "acme", "environment": "vtexcommercebeta"})
        == "https://acme.vtexcommercebeta.com.br"
    )


def test_about_markdown_describes_every_setting() -> None:
    result = subprocess.run(
        [str(TAP_EXECUTABLE), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for name, schema in TapVtex.config_jsonschema["properties"].items():
        assert schema.get("description"), f"setting {name} has no description"
        assert f"| {name} |" in result.stdout
    for secret in ("app_key", "app_token"):
        assert TapVtex.config_jsonschema["properties"][secret].get("secret") is True


def test_records_are_conformed_once_per_schema_as_the_sdk_would(world: World) -> None:
    """Every stream conforms its records with tapkit's compiled conformance, and the
    records and state are the ones singer-sdk's own recursive conformance writes."""
    assert_conformed_as_the_sdk_would(TapVtex(config=BASE_CONFIG), lambda: sync({}))


# --- the order detail's request, prepared once -------------------------------------------


def _sync_watching_requests(
    monkeypatch: pytest.MonkeyPatch, *, cookie: str | None = None
) -> tuple[SyncResult, int, list[requests.PreparedRequest]]:
    """A sync, with the times ``Session.prepare_request`` ran and every request sent;
    ``cookie``: each stream's session holds it (as after a platform's Set-Cookie)."""
    prepared = [0]
    sent: list[requests.PreparedRequest] = []
    prepare, send, make = (
        requests.Session.prepare_request,
        requests.Session.send,
        ProxiesOnceSession.__init__,
    )

    def counting_prepare(self: requests.Session, request: requests.Request) -> Any:
        prepared[0] += 1
        return prepare(self, request)

    def noting_send(self: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
        sent.append(request)
        return send(self, request, **kw)

    def with_cookie(self: ProxiesOnceSession, *args: Any, **kwargs: Any) -> None:
        make(self, *args, **kwargs)
        if cookie is not None:
            self.cookies.set("vtex_session", cookie)

    monkeypatch.setattr(requests.Session, "prepare_request", counting_prepare)
    monkeypatch.setattr(requests.Session, "send", noting_send)
    monkeypatch.setattr(ProxiesOnceSession, "__init__", with_cookie)
    result = sync({})
    monkeypatch.undo()
    return result, prepared[0], sent


def test_order_details_reuse_one_prepared_request_until_the_session_holds_a_cookie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without cookies, the detail GETs are copies of one prepared request (not one
    ``prepare_request`` per order), each with its own path, the stream's headers and
    the same records; once the session holds a cookie, every request is prepared in
    full again and carries it."""
    lean, lean_prepared, lean_sent = _sync_watching_requests(monkeypatch)
    full, full_prepared, full_sent = _sync_watching_requests(monkeypatch, cookie="abc")
    orders = len(lean.records["orders"])
    details = [r for r in lean_sent if "/api/oms/pvt/orders/" in (r.url or "")]
    assert orders > 10
    assert len(details) == orders
    assert len({r.url for r in details}) == orders
    assert lean_prepared < len(lean_sent) - orders + 2  # the pages, and one template
    for request in details:
        assert request.headers["X-VTEX-API-AppKey"] == SANDBOX_APP_KEY
        assert request.headers["Accept"] == "application/json"
        assert "Cookie" not in request.headers
    assert full_prepared >= len(full_sent)
    assert all(r.headers.get("Cookie") == "vtex_session=abc" for r in full_sent)
    assert lean.records == full.records
    assert timeless_state(lean.state) == timeless_state(full.state)


def test_records_are_read_without_building_a_jsonpath_parser() -> None:
    """The list pages' records come from tapkit's ``records_at``: a sync compiles no
    JSONPath expression (each one built jsonpath-ng's parser tables at every start)."""
    from singer_sdk.helpers import jsonpath

    jsonpath._compile_jsonpath.cache_clear()
    result = sync({})
    assert result.records["orders"] and result.records["customers"]
    assert jsonpath._compile_jsonpath.cache_info().currsize == 0
