"""Meta Graph API emulation of an Instagram professional account, over the world's account.

Serves what an Instagram extract reads, the way Graph does, so the real tap and Meta's
own SDK (``facebook-business``) run unchanged against it:

- **paths**: ``GET /{version}/{node-id}`` and ``GET /{version}/{node-id}/{edge}``; any
  version from :data:`~omnicanal.channels.meta.OLDEST_GRAPH_VERSION` up to the newest
  (older ones answer code 2635, unknown ones code 2500, like unknown paths);
- **auth**: ``access_token`` in the query or ``Authorization: Bearer`` / ``OAuth``;
  none is code 104, a wrong one code 190, an expired one code 190 subcode 463 — all
  HTTP 400 with ``WWW-Authenticate``, as Graph answers;
- **nodes**: the IG User (``/me`` too: ``id``, ``username``, ``name``, ``biography``,
  ``followers_count``, ``media_count``), its linked Page (``instagram_business_account``),
  IG Media, IG Comments, Instagram-scoped users (IGSID: ``id``, ``username``, ``name``),
  conversations and messages;
- **edges**: ``/{ig-user-id}/media`` (newest first; ``since`` / ``until`` as Unix time
  or ISO 8601), ``/{media-id}/comments`` (top-level comments, newest first),
  ``/{comment-id}/replies`` (oldest first), ``/{page-id}/conversations`` and
  ``/{ig-user-id}/conversations`` (``platform=instagram`` is required on a Page, as it
  otherwise lists Messenger threads; ``user_id`` picks one person's thread; most
  recently updated first), ``/{conversation-id}/messages`` (newest first);
- **fields=**: comma lists with nested selections and edge expansions
  (``from{id,username}``, ``replies.limit(50){id,text}``, ``messages{message,from}``);
  an unknown field is code 100 naming the node type. Message details (``from``,
  ``to``, ``message``) are given for the 20 most recent messages of a conversation
  only: older ones answer code 100 (Meta's documented limit);
- **paging**: ``limit`` (default 25, at most 100) and cursors — ``paging.cursors.before``
  / ``after`` on every non-empty page, ``paging.next`` only while more remain;
- **throttling**: every answer carries ``X-App-Usage`` and ``X-Business-Use-Case-Usage``
  (``call_count``, ``total_cputime``, ``total_time`` percentages, and
  ``estimated_time_to_regain_access`` in minutes). At 100 % calls are refused: code 4
  (app) or 80002 (Instagram account) / 32 (Page), HTTP 400;
- **faults** for tests: ``fail_next(n, status)`` (429 with ``Retry-After``, 5xx with
  Graph's transient body), ``rate_limit_next(n, code)`` (4, 17, 32, 613, 80002),
  ``stall_next(n, seconds)`` (timeouts), ``expire_token()`` / ``renew_token()``,
  ``force_usage(percent)``; also over HTTP at ``POST /_sandbox/instagram/faults``;
  ``add_comment`` / ``add_message`` change the account for incremental tests.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match

from omnicanal.channels import meta
from omnicanal.channels.instagram import SANDBOX_ACCESS_TOKEN
from omnicanal.channels.instagram.world import InstagramAccount, _b64
from omnicanal.channels.meta import FieldSpec, GraphError, UsageMeter, graph_time
from omnicanal.sandbox.throttle import Clock
from omnicanal.sandbox.world import World

#: Hourly budgets behind the usage headers: the app's, and the account's (BUC).
DEFAULT_APP_CALLS_PER_HOUR = 20_000
DEFAULT_ACCOUNT_CALLS_PER_HOUR = 4_800
#: Meta serves message details for this many most recent messages of a conversation.
MESSAGE_DETAIL_WINDOW = 20

_FIELDS: dict[str, tuple[str, ...]] = {
    "IGUser": ("id", "ig_id", "username", "name", "biography", "followers_count", "media_count"),
    "Page": ("id", "name", "instagram_business_account"),
    "IGMedia": (
        "id",
        "caption",
        "media_type",
        "media_product_type",
        "media_url",
        "permalink",
        "shortcode",
        "timestamp",
        "username",
        "owner",
        "like_count",
        "comments_count",
        "is_comment_enabled",
    ),  # fmt: skip
    "IGComment": (
        "id",
        "text",
        "timestamp",
        "username",
        "from",
        "like_count",
        "hidden",
        "media",
        "parent_id",
        "user",
    ),  # fmt: skip
    "InstagramUser": ("id", "username", "name"),
    "Conversation": ("id", "updated_time", "participants", "message_count"),
    "Message": ("id", "created_time", "from", "to", "message"),
}
_DEFAULT_FIELDS = {
    "IGUser": ("id",),
    "Page": ("id", "name"),
    "IGMedia": ("id",),
    "IGComment": ("timestamp", "text", "id"),
    "InstagramUser": ("id",),
    "Conversation": ("id", "updated_time"),
    "Message": ("id", "created_time"),
}
_EDGES = {
    "IGUser": ("media", "conversations"),
    "Page": ("conversations",),
    "IGMedia": ("comments",),
    "IGComment": ("replies",),
    "Conversation": ("messages",),
}


class InstagramEmulator:
    """The emulated Graph API of one Instagram professional account."""

    def __init__(
        self,
        world: World,
        *,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        app_calls_per_hour: int | None = DEFAULT_APP_CALLS_PER_HOUR,
        account_calls_per_hour: int | None = DEFAULT_ACCOUNT_CALLS_PER_HOUR,
        clock: Clock = time.monotonic,
    ) -> None:
        self.world = world
        self.account: InstagramAccount = world.slices["instagram"]
        self.access_token = access_token
        self.token_expired_at: datetime | None = None
        self.app_usage = UsageMeter(app_calls_per_hour, clock)
        self.account_usage = UsageMeter(account_calls_per_hour, clock)
        self.request_count = 0
        self._faults: deque[tuple[str, Any]] = deque()
        self._lock = threading.RLock()
        self._reindex()
        self.router = self._build_router()

    # -- indexes -------------------------------------------------------------------------

    def _reindex(self) -> None:
        acc = self.account
        with self._lock:
            self.media_by_id = {m["id"]: m for m in acc.media}
            self.comment_by_id = {c["id"]: c for c in acc.comments}
            self.user_by_id = {u["id"]: u for u in acc.users}
            self.conversation_by_id = {c["id"]: c for c in acc.conversations}
            self.message_by_id = {m["id"]: m for m in acc.messages}
            self.top_comments: dict[str, list[dict]] = {}
            self.replies: dict[str, list[dict]] = {}
            for comment in sorted(acc.comments, key=lambda c: c["timestamp"]):
                if comment.get("parent_id"):
                    self.replies.setdefault(comment["parent_id"], []).append(comment)
                else:
                    self.top_comments.setdefault(comment["media_id"], []).append(comment)
            for comments in self.top_comments.values():
                comments.reverse()  # newest first
            self.thread_messages: dict[str, list[dict]] = {}
            for message in sorted(acc.messages, key=lambda m: m["created_time"], reverse=True):
                self.thread_messages.setdefault(message["conversation_id"], []).append(message)

    # -- test controls -------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` authenticated requests with ``status`` (429 or 5xx)."""
        with self._lock:
            self._faults.extend([("status", status)] * n)

    def rate_limit_next(self, n: int = 1, code: int = 4) -> None:
        """Refuse the next ``n`` requests with Graph's rate-limit error ``code``."""
        meta.rate_limited(code)  # validates the code
        with self._lock:
            self._faults.extend([("rate_limit", code)] * n)

    def stall_next(self, n: int = 1, seconds: float = 5.0) -> None:
        """Make the next ``n`` requests answer only after ``seconds`` (a client timeout)."""
        with self._lock:
            self._faults.extend([("stall", seconds)] * n)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self.app_usage.force(None)
        self.account_usage.force(None)

    def force_usage(self, percent: int | None, *, app: bool = False) -> None:
        """Report ``percent`` in the account's (or the app's) usage header; 100 refuses."""
        (self.app_usage if app else self.account_usage).force(percent)

    def expire_token(self, at: datetime | None = None) -> None:
        """The access token's session expires: every call answers code 190/463."""
        self.token_expired_at = at or datetime.now(UTC) - timedelta(minutes=1)

    def renew_token(self) -> None:
        self.token_expired_at = None

    def add_comment(
        self,
        media_id: str,
        user_id: str,
        text: str,
        *,
        parent_id: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A person (IGSID) comments on a post (or replies to ``parent_id``) now."""
        user = self.user_by_id.get(user_id) or {
            "id": self.account.account["id"],
            "username": self.account.account["username"],
        }
        moment = at or datetime.now(UTC)
        comment = {
            "id": f"178{secrets.randbelow(10**14):014d}",
            "media_id": media_id,
            "text": text,
            "timestamp": graph_time(moment),
            "username": user["username"],
            "from": {"id": user["id"], "username": user["username"]},
            "like_count": 0,
            "hidden": False,
        }
        if parent_id:
            comment["parent_id"] = parent_id
        with self._lock:
            self.account.comments.append(comment)
            self.media_by_id[media_id]["comments_count"] += 1
            self._reindex()
        return comment

    def add_message(
        self,
        conversation_id: str,
        text: str,
        *,
        from_business: bool = False,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """A new Direct message in a thread; the conversation's ``updated_time`` moves."""
        conversation = self.conversation_by_id[conversation_id]
        fan, business = conversation["participants"]["data"]
        sender, recipient = (business, fan) if from_business else (fan, business)
        moment = at or datetime.now(UTC)
        message = {
            "id": _b64(f"ig_item:1:IGMessageID:{secrets.randbelow(10**19)}"),
            "conversation_id": conversation_id,
            "created_time": graph_time(moment),
            "from": dict(sender),
            "to": {"data": [dict(recipient)]},
            "message": text,
        }
        with self._lock:
            self.account.messages.append(message)
            conversation["updated_time"] = message["created_time"]
            self.account.conversations.sort(key=lambda c: c["updated_time"], reverse=True)
            self._reindex()
        return message

    # -- the guard -----------------------------------------------------------------------

    def _usage(self, kind: str) -> tuple[int, int, dict[str, str]]:
        business_id = (
            self.account.account["page_id"] if kind == "pages" else self.account.account["id"]
        )
        app = self.app_usage.record()
        account = self.account_usage.record()
        headers = {
            "X-App-Usage": UsageMeter.app_usage_header(app),
            "X-Business-Use-Case-Usage": UsageMeter.business_usage_header(
                business_id, kind, account
            ),
        }
        return app, account, headers

    async def _guard(self, request: Request, kind: str) -> dict[str, str]:
        """Authenticate, meter and inject faults; raise the Graph error to answer."""
        self.request_count += 1
        token = meta.request_token(request)
        if not token:
            raise meta.missing_token()
        if not secrets.compare_digest(token, self.access_token):
            raise meta.invalid_token()
        if self.token_expired_at is not None:
            raise meta.expired_token(self.token_expired_at)
        app, account, headers = self._usage(kind)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault and fault[0] == "stall":
            await asyncio.sleep(fault[1])
            fault = None
        if fault and fault[0] == "status":
            error = meta.server_error(fault[1]) if fault[1] >= 500 else meta.rate_limited(4)
            error.status = fault[1]
            if fault[1] == 429:
                error.headers["Retry-After"] = "1"
            error.headers.update(headers)
            raise error
        if fault and fault[0] == "rate_limit":
            code = fault[1]
            headers = self._usage_at(kind, 100, app=code == 4)
            error = meta.rate_limited(code)
            error.headers.update(headers)
            raise error
        if app >= 100 or account >= 100:
            code = 4 if app >= 100 else (32 if kind == "pages" else 80002)
            error = meta.rate_limited(code)
            error.headers.update(headers)
            raise error
        return headers

    def _usage_at(self, kind: str, percent: int, *, app: bool) -> dict[str, str]:
        business_id = (
            self.account.account["page_id"] if kind == "pages" else self.account.account["id"]
        )
        return {
            "X-App-Usage": UsageMeter.app_usage_header(percent if app else 1),
            "X-Business-Use-Case-Usage": UsageMeter.business_usage_header(
                business_id, kind, 1 if app else percent
            ),
        }

    # -- nodes ---------------------------------------------------------------------------

    def _node(self, node_id: str) -> tuple[str, dict[str, Any]]:
        acc = self.account.account
        if node_id in ("me", acc["id"]):
            return "IGUser", acc
        if node_id == acc["page_id"]:
            return "Page", acc
        for kind, index in (
            ("IGMedia", self.media_by_id),
            ("IGComment", self.comment_by_id),
            ("InstagramUser", self.user_by_id),
            ("Conversation", self.conversation_by_id),
            ("Message", self.message_by_id),
        ):
            if node_id in index:
                return kind, index[node_id]
        raise meta.unsupported_get(node_id)

    def _field(
        self,
        kind: str,
        obj: dict[str, Any],
        spec: FieldSpec,
        base: str,
        token: str,
        direct: bool = False,
    ) -> Any:
        name = spec.name
        if name in _EDGES.get(kind, ()):
            items = self._edge_items(kind, obj, name, {})
            limit = spec.limit or meta.DEFAULT_PAGE_LIMIT
            page, paging = meta.cursor_page(
                items,
                limit=min(limit, meta.MAX_PAGE_LIMIT),
                after=None,
                before=None,
                url=f"{base}/{obj['id'] if kind != 'Page' else obj['page_id']}/{name}",
                params={"access_token": token, "fields": _unparse(spec.fields)}
                if spec.fields
                else {"access_token": token},
            )
            child = _EDGE_KIND[name]
            body: dict[str, Any] = {
                "data": [self._render(child, i, spec.fields, base, token) for i in page]
            }
            if paging:
                body["paging"] = paging
            return body
        if name not in _FIELDS[kind]:
            raise meta.invalid_parameter(
                f"Tried accessing nonexisting field ({name}) on node type ({kind})"
            )
        if kind == "Message" and name in ("from", "to", "message"):
            recent = self.thread_messages.get(obj["conversation_id"], [])[:MESSAGE_DETAIL_WINDOW]
            if not any(m is obj for m in recent):
                if not direct:
                    return None  # listed: the older message comes without its details
                raise meta.invalid_parameter(
                    "Message details are available for the 20 most recent messages of a "
                    "conversation only"
                )
        if kind == "IGUser" and name == "ig_id":
            return int(obj["id"][-10:])
        if kind == "Page":
            if name == "instagram_business_account":
                return {"id": obj["id"]}
            if name == "id":
                return obj["page_id"]
            return obj["name"]
        if kind == "IGComment":
            if name == "media":
                return {"id": obj["media_id"]}
            if name == "user":
                return {"id": obj["from"]["id"]} if obj["from"]["id"] in self.user_by_id else None
        if kind == "Conversation" and name == "message_count":
            return len(self.thread_messages.get(obj["id"], []))
        value = obj.get(name)
        if spec.fields and isinstance(value, dict):
            if "data" in value:
                return {
                    "data": [{f.name: v.get(f.name) for f in spec.fields} for v in value["data"]]
                }
            return {f.name: value.get(f.name) for f in spec.fields}
        return value

    def _render(
        self,
        kind: str,
        obj: dict[str, Any],
        specs: list[FieldSpec],
        base: str,
        token: str,
        direct: bool = False,
    ) -> dict[str, Any]:
        specs = specs or [FieldSpec(f) for f in _DEFAULT_FIELDS[kind]]
        out: dict[str, Any] = {}
        for spec in specs:
            value = self._field(kind, obj, spec, base, token, direct)
            if value is not None:
                out[spec.name] = value
        if "id" not in out and kind != "Page":
            out["id"] = obj["id"]
        return out

    def _edge_items(
        self, kind: str, obj: dict[str, Any], edge: str, params: dict[str, str]
    ) -> list[dict[str, Any]]:
        if edge == "media":
            items = list(self.account.media)
            since, until = _time_param(params, "since"), _time_param(params, "until")
            if since:
                items = [m for m in items if meta.parse_graph_time(m["timestamp"]) >= since]
            if until:
                items = [m for m in items if meta.parse_graph_time(m["timestamp"]) <= until]
            return items
        if edge == "comments":
            return self.top_comments.get(obj["id"], [])
        if edge == "replies":
            return self.replies.get(obj["id"], [])
        if edge == "messages":
            return self.thread_messages.get(obj["id"], [])
        if edge == "conversations":
            platform = params.get("platform")
            if kind == "Page" and platform != "instagram":
                if platform not in (None, "", "messenger"):
                    raise meta.invalid_parameter(
                        f'Param platform must be one of {{MESSENGER, INSTAGRAM}} - got "{platform}"'
                    )
                return []  # the Page's Messenger inbox: none in this world
            items = list(self.account.conversations)
            if params.get("user_id"):
                items = [
                    c
                    for c in items
                    if any(p["id"] == params["user_id"] for p in c["participants"]["data"])
                ]
            return items
        raise meta.unknown_path(edge)

    # -- router --------------------------------------------------------------------------

    def _build_router(self) -> APIRouter:
        router = APIRouter(tags=["instagram"])

        def check_version(version: str, rest: str) -> None:
            parsed = meta.version_tuple(version)
            newest = meta.version_tuple(meta.GRAPH_API_VERSION)
            oldest = meta.version_tuple(meta.OLDEST_GRAPH_VERSION)
            if parsed is None or parsed > newest:
                raise meta.unknown_path(f"{version}/{rest}")
            if parsed < oldest:
                raise GraphError(
                    f"(#2635) You are calling a deprecated version of the Graph API. Please "
                    f"update to the latest version: {meta.GRAPH_API_VERSION}.",
                    code=2635,
                )

        def kind_of_traffic(kind: str, edge: str | None) -> str:
            if kind in ("Conversation", "Message") or edge == "conversations":
                return "pages"
            return "instagram"

        async def node(request: Request, version: str, node_id: str) -> JSONResponse:
            headers: dict[str, str] = {}
            try:
                check_version(version, node_id)
                kind, obj = self._node(node_id)
                headers = await self._guard(request, kind_of_traffic(kind, None))
                specs = meta.parse_fields(request.query_params.get("fields"))
                base = f"{str(request.base_url).rstrip('/')}/{version}"
                token = meta.request_token(request) or ""
                body = self._render(kind, obj, specs, base, token, direct=True)
                return JSONResponse(body, headers=headers)
            except GraphError as error:
                return error.response(headers)

        async def edge(request: Request, version: str, node_id: str, edge: str) -> JSONResponse:
            headers: dict[str, str] = {}
            try:
                check_version(version, f"{node_id}/{edge}")
                kind, obj = self._node(node_id)
                if edge not in _EDGES.get(kind, ()):
                    raise meta.unknown_path(edge)
                headers = await self._guard(request, kind_of_traffic(kind, edge))
                params = dict(request.query_params)
                specs = meta.parse_fields(params.get("fields"))
                items = self._edge_items(kind, obj, edge, params)
                limit = meta.page_limit(params.get("limit"))
                url = f"{str(request.base_url).rstrip('/')}/{version}/{node_id}/{edge}"
                page, paging = meta.cursor_page(
                    items,
                    limit=limit,
                    after=params.get("after"),
                    before=params.get("before"),
                    url=url,
                    params=params,
                )
                base = f"{str(request.base_url).rstrip('/')}/{version}"
                token = meta.request_token(request) or ""
                body: dict[str, Any] = {
                    "data": [self._render(_EDGE_KIND[edge], i, specs, base, token) for i in page]
                }
                if paging:
                    body["paging"] = paging
                return JSONResponse(body, headers=headers)
            except GraphError as error:
                return error.response(headers)

        async def faults(body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
            n = int(body.get("n", 1))
            if body.get("expire_token"):
                self.expire_token()
            elif body.get("renew_token"):
                self.renew_token()
            elif body.get("timeout_seconds") is not None:
                self.stall_next(n, float(body["timeout_seconds"]))
            elif body.get("rate_limit_code") is not None:
                self.rate_limit_next(n, int(body["rate_limit_code"]))
            elif body.get("usage_percent") is not None:
                self.force_usage(int(body["usage_percent"]))
            else:
                self.fail_next(n, int(body.get("status", 500)))
            return JSONResponse({"pending": len(self._faults)})

        router.add_api_route(
            "/_sandbox/instagram/faults", faults, methods=["POST"], include_in_schema=False
        )
        owns = self.owns
        for path, handler in (
            ("/{version}/{node_id}", node),
            ("/{version}/{node_id}/{edge}", edge),
        ):
            router.add_api_route(
                path, handler, methods=["GET"], route_class_override=_route_for(owns)
            )
        return router

    def owns(self, version: str, node_id: str) -> bool:
        """Whether a path is this account's: a Graph version and one of its node ids.

        Other Graph emulations (WhatsApp) and other platforms' paths (``/v2/…``,
        ``/3.0/…``) share the sandbox's URL space, so the Graph routes claim only the
        nodes they hold.
        """
        if not meta.VERSION_PATTERN.fullmatch(version):
            return False
        acc = self.account.account
        return node_id in ("me", acc["id"], acc["page_id"]) or any(
            node_id in index
            for index in (
                self.media_by_id,
                self.comment_by_id,
                self.user_by_id,
                self.conversation_by_id,
                self.message_by_id,
            )
        )


def _route_for(owns: Any) -> type[APIRoute]:
    class OwnNodesRoute(APIRoute):
        """A Graph route that matches only the nodes its emulator holds."""

        def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
            match, child = super().matches(scope)
            if match is not Match.NONE:
                params = child.get("path_params", {})
                if not owns(params.get("version", ""), params.get("node_id", "")):
                    return Match.NONE, {}
            return match, child

    return OwnNodesRoute


_EDGE_KIND = {
    "media": "IGMedia",
    "comments": "IGComment",
    "replies": "IGComment",
    "conversations": "Conversation",
    "messages": "Message",
}


def _unparse(specs: list[FieldSpec]) -> str:
    parts = []
    for spec in specs:
        text = spec.name + (f".limit({spec.limit})" if spec.limit else "")
        if spec.fields:
            text += "{" + _unparse(spec.fields) + "}"
        parts.append(text)
    return ",".join(parts)


def _time_param(params: dict[str, str], name: str) -> datetime | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    if raw.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(raw), UTC)
    try:
        return meta.parse_graph_time(raw)
    except ValueError:
        raise meta.invalid_parameter(
            f"Param {name} must be a valid unix timestamp or time string"
        ) from None
