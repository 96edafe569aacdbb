"""The Instagram resources this tap reads, and how each one is synced.

- ``media``: ``GET /{ig_user_id}/media`` (full table: a post's ``like_count`` and
  ``comments_count`` change after it is published; the list is the account's posts,
  small); the parent of ``comments``;
- ``comments``: ``GET /{media_id}/comments`` with each comment's ``replies`` expanded
  (``replies.limit(100){…}``, more pages read from ``/{comment_id}/replies``). The edge
  has no time filter, so every post's comments are read and only those at or after the
  bookmark (``timestamp``, one for the stream) are emitted;
- ``conversations``: ``GET /{page_id}/conversations?platform=instagram`` (or
  ``/{ig_user_id}/conversations`` without a Page), most recently updated first:
  paging stops at the first page older than the bookmark (``updated_time``);
- ``messages``: ``GET /{conversation_id}/messages`` of each conversation updated since the
  bookmark, newest first, down to the bookmark (``created_time``). Meta gives the
  details (``from``, ``to``, ``message``) of a conversation's 20 most recent messages
  only; older ones arrive with ``id`` and ``created_time`` alone.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from singer_sdk import typing as th

from tap_instagram.client import GraphStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

_ACTOR = th.ObjectType(th.Property("id", th.StringType), th.Property("username", th.StringType))
_COMMENT_FIELDS = "id,text,timestamp,username,like_count,hidden,parent_id,from{id,username}"


class MediaStream(GraphStream):
    """``GET /{ig_user_id}/media``: the account's posts, reels and albums."""

    name = "media"
    fields = (
        "id,caption,media_type,media_product_type,media_url,permalink,shortcode,timestamp,"
        "username,like_count,comments_count,is_comment_enabled"
    )
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property(
            "ig_user_id",
            th.StringType,
            description="The professional account the record was read for (tap setting).",
        ),
        th.Property("caption", th.StringType),
        th.Property("media_type", th.StringType),
        th.Property("media_product_type", th.StringType),
        th.Property("media_url", th.StringType),
        th.Property("permalink", th.StringType),
        th.Property("shortcode", th.StringType),
        th.Property("timestamp", th.DateTimeType),
        th.Property("username", th.StringType),
        th.Property("like_count", th.IntegerType),
        th.Property("comments_count", th.IntegerType),
        th.Property("is_comment_enabled", th.BooleanType),
    ).to_dict()

    @property
    def path(self) -> str:  # type: ignore[override]
        return f"/{self.config['ig_user_id']}/media"

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        return {"media_id": record["id"]}


class CommentsStream(GraphStream):
    """``GET /{media_id}/comments``: comments on the posts and the replies to them."""

    name = "comments"
    path = "/{media_id}/comments"
    parent_stream_type = MediaStream
    replication_key = "timestamp"
    is_sorted = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
    required_permission = "instagram_manage_comments"
    fields = f"{_COMMENT_FIELDS},replies.limit(100){{{_COMMENT_FIELDS}}}"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property(
            "ig_user_id",
            th.StringType,
            description="The professional account the record was read for (tap setting).",
        ),
        th.Property("media_id", th.StringType),
        th.Property("parent_id", th.StringType, description="The comment replied to, if any."),
        th.Property("text", th.StringType),
        th.Property("timestamp", th.DateTimeType),
        th.Property("username", th.StringType),
        th.Property("from", _ACTOR),
        th.Property("like_count", th.IntegerType),
        th.Property("hidden", th.BooleanType),
    ).to_dict()

    def parse_response(self, response: t.Any) -> t.Iterable[dict]:
        """Each comment, then its replies (following their own pages when there are more)."""
        for comment in response.json().get("data") or []:
            replies = comment.pop("replies", None) or {}
            yield comment
            yield from (reply | {"parent_id": comment["id"]} for reply in replies.get("data", []))
            after = (replies.get("paging") or {}).get("cursors", {}).get("after")
            while after and "next" in (replies.get("paging") or {}):
                replies = self._more_replies(comment["id"], after)
                yield from (r | {"parent_id": comment["id"]} for r in replies.get("data", []))
                after = (replies.get("paging") or {}).get("cursors", {}).get("after")

    def _more_replies(self, comment_id: str, after: str) -> dict:
        request = self.build_prepared_request(
            method="GET",
            url=f"{self.url_base}/{comment_id}/replies",
            params={"fields": _COMMENT_FIELDS, "limit": 100, "after": after},
            headers=self.http_headers,
        )
        response = self.requests_session.send(request, timeout=self.timeout)
        self.validate_response(response)
        return response.json()

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        if context:
            row["media_id"] = context["media_id"]
        return super().post_process(row, context)


class ConversationsStream(GraphStream):
    """``GET /{page_id}/conversations?platform=instagram``: Direct threads."""

    name = "conversations"
    replication_key = "updated_time"
    is_sorted = False  # newest first: the bookmark is saved when the stream ends
    required_permission = "instagram_manage_messages"
    fields = "id,updated_time,participants"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property(
            "ig_user_id",
            th.StringType,
            description="The professional account the record was read for (tap setting).",
        ),
        th.Property("updated_time", th.DateTimeType),
        th.Property(
            "participants",
            th.ObjectType(th.Property("data", th.ArrayType(_ACTOR))),
            description="The person (IGSID and handle) and the business account.",
        ),
    ).to_dict()

    @property
    def path(self) -> str:  # type: ignore[override]
        node = self.config.get("page_id") or self.config["ig_user_id"]
        return f"/{node}/conversations"

    def get_url_params(self, context: Context | None, next_page_token: str | None) -> dict:
        return {**super().get_url_params(context, next_page_token), "platform": "instagram"}

    def stop_paging(self, page: list[dict]) -> bool:
        return _older_than(page[-1:], "updated_time", self.start_time(None))

    def get_child_context(self, record: Record, context: Context | None) -> dict:
        return {"conversation_id": record["id"]}


class MessagesStream(GraphStream):
    """``GET /{conversation_id}/messages``: what each side wrote, newest first."""

    name = "messages"
    path = "/{conversation_id}/messages"
    parent_stream_type = ConversationsStream
    replication_key = "created_time"
    is_sorted = False
    state_partitioning_keys: t.ClassVar[list[str]] = []
    required_permission = "instagram_manage_messages"
    fields = "id,created_time,from,to,message"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True),
        th.Property(
            "ig_user_id",
            th.StringType,
            description="The professional account the record was read for (tap setting).",
        ),
        th.Property("conversation_id", th.StringType),
        th.Property("created_time", th.DateTimeType),
        th.Property("from", _ACTOR),
        th.Property("to", th.ObjectType(th.Property("data", th.ArrayType(_ACTOR)))),
        th.Property("message", th.StringType),
    ).to_dict()

    def stop_paging(self, page: list[dict]) -> bool:
        return _older_than(page[-1:], "created_time", self.start_time(None))

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        if context:
            row["conversation_id"] = context["conversation_id"]
        return super().post_process(row, context)


def _older_than(rows: list[dict], key: str, start: dt.datetime | None) -> bool:
    from tap_instagram.client import to_utc_iso

    if start is None or not rows or not isinstance(rows[0].get(key), str):
        return False
    return dt.datetime.fromisoformat(to_utc_iso(rows[0][key])) < start
