"""Meta's official Python SDK (``facebook-business``) drives the sandbox's Instagram emulation.

The SDK addresses an IG User's media, a post's comments and a comment's replies through
its generated ``IGUser`` / ``IGMedia`` / ``IGComment`` classes; its ``Cursor`` follows
``paging.cursors.after`` while ``paging.next`` is present, and its
``FacebookRequestError`` reads Graph's error envelope. All of that must work unchanged
against the emulation, as against ``graph.facebook.com``; only ``FacebookSession.GRAPH``
differs.
"""

from __future__ import annotations

import pytest
from facebook_business.adobjects.igcomment import IGComment
from facebook_business.adobjects.igmedia import IGMedia
from facebook_business.adobjects.iguser import IGUser
from facebook_business.api import FacebookAdsApi, FacebookSession
from facebook_business.exceptions import FacebookRequestError

from omnicanal.channels.instagram import API_VERSION, SANDBOX_ACCESS_TOKEN, SANDBOX_IG_USER_ID


def _api(url: str, token: str = SANDBOX_ACCESS_TOKEN) -> FacebookAdsApi:
    session = FacebookSession(access_token=token)
    session.GRAPH = url
    return FacebookAdsApi(session, api_version=API_VERSION)


@pytest.fixture
def api(server) -> FacebookAdsApi:
    return _api(server.url)


def test_the_sdk_targets_the_version_the_sandbox_serves() -> None:
    assert FacebookAdsApi.API_VERSION == API_VERSION


def test_media_cursor_walks_every_post_newest_first(api, world) -> None:
    account = world.slices["instagram"]
    user = IGUser(SANDBOX_IG_USER_ID, api=api)
    fields = [IGMedia.Field.id, IGMedia.Field.caption, IGMedia.Field.timestamp,
              IGMedia.Field.comments_count, IGMedia.Field.permalink]  # fmt: skip
    cursor = user.get_media(fields=fields, params={"limit": 4})
    posts = list(cursor)
    assert [p["id"] for p in posts] == [m["id"] for m in account.media]
    assert len(account.media) > 4  # several pages were followed
    stamps = [p["timestamp"] for p in posts]
    assert stamps == sorted(stamps, reverse=True) and stamps[0].endswith("+0000")
    assert set(posts[0].export_all_data()) == {
        "id", "caption", "timestamp", "comments_count", "permalink"
    }  # fmt: skip
    assert "X-App-Usage" in cursor.headers()


def test_comments_and_replies_through_the_sdk(api, world) -> None:
    account = world.slices["instagram"]
    parent = next(c for c in account.comments if c.get("parent_id"))["parent_id"]
    media_id = next(c["media_id"] for c in account.comments if c["id"] == parent)
    fields = [IGComment.Field.id, IGComment.Field.text, IGComment.Field.timestamp,
              IGComment.Field.username, IGComment.Field.like_count,
              IGComment.Field.field_from]  # fmt: skip
    comments = list(IGMedia(media_id, api=api).get_comments(fields=fields, params={"limit": 2}))
    expected = [c for c in account.comments if c["media_id"] == media_id and not c.get("parent_id")]
    assert {c["id"] for c in comments} == {c["id"] for c in expected}
    first = next(c for c in comments if c["id"] == parent)
    truth = next(c for c in account.comments if c["id"] == parent)
    assert first["from"].export_all_data() == truth["from"]
    assert first["username"] == truth["username"]
    replies = list(IGComment(parent, api=api).get_replies(fields=fields))
    assert [r["id"] for r in replies] == [
        c["id"] for c in account.comments if c.get("parent_id") == parent
    ]
    assert replies[0]["timestamp"] >= first["timestamp"]


def test_an_expired_token_is_graphs_oauth_error(server) -> None:
    emulator = server.app.state.instagram
    emulator.expire_token()
    try:
        with pytest.raises(FacebookRequestError) as caught:
            IGUser(SANDBOX_IG_USER_ID, api=_api(server.url)).api_get(fields=["username"])
    finally:
        emulator.renew_token()
    error = caught.value
    assert error.http_status() == 400
    assert (error.api_error_code(), error.api_error_subcode()) == (190, 463)
    assert error.api_error_type() == "OAuthException"
    assert "Session has expired" in error.api_error_message()
    assert error.body()["error"]["fbtrace_id"]


def test_a_wrong_token_and_an_unknown_field_are_refused(server) -> None:
    with pytest.raises(FacebookRequestError) as wrong:
        IGUser(SANDBOX_IG_USER_ID, api=_api(server.url, "EAAGnot-the-token")).api_get(
            fields=["username"]
        )
    assert wrong.value.api_error_code() == 190
    with pytest.raises(FacebookRequestError) as unknown:
        IGUser(SANDBOX_IG_USER_ID, api=_api(server.url)).api_get(fields=["nonexisting_field"])
    assert unknown.value.api_error_code() == 100
    assert "nonexisting_field" in unknown.value.api_error_message()
    account = IGUser(SANDBOX_IG_USER_ID, api=_api(server.url)).api_get(
        fields=["username", "media_count"]
    )
    assert account["username"] == "casa.omnicanal" and account["media_count"] > 0
