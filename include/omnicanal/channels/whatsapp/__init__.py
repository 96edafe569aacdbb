"""WhatsApp (Business Cloud API): the retailer's chats. A source fed by webhooks.

Messages and statuses leave WhatsApp only by webhook: Meta posts them, signed with the
app secret, to the callback URL the app subscribed, and our receiver
(:mod:`omnicanal.webhooks`, ``omnicanal webhooks serve``) stores them durably before
answering 200.

- settings: ``OMNICANAL_WHATSAPP_*`` below (the receiver reads ``app_secret`` and
  ``verify_token`` from them);
- source: ``tap-whatsapp`` (taps/tap-whatsapp), ``delivery="webhook"``: it reads the
  receiver's ``GET /events/whatsapp?after=<seq>`` incrementally (bookmark: ``seq``);
- emulation: :mod:`.emulation`, the Cloud API (phone numbers, sending messages) and
  Meta's webhook deliverer (:mod:`.delivery`: signed posts, retries with back-off, the
  occasional duplicate) over the chats of :mod:`.world`;
- destination: :mod:`.destination`, a template message to each member of a segment
  (``mode: message``), whose delivery statuses come back by webhook and are written to
  the ledger by :mod:`.statuses`;
- identity: each contact (``stg_whatsapp__contacts``) is an identity record whose
  ``wa_id`` is the phone as WhatsApp reports it (often without the ninth digit).
"""

from __future__ import annotations

import re
from typing import Any

from omnicanal.channels.channel import Channel, Emulation, IdentityFeed, Source, max_retries_setting
from omnicanal.channels.meta import GRAPH_API_VERSION
from omnicanal.config import Setting, Settings, http_url, whole_number
from omnicanal.errors import ConfigError

#: The Graph API version the Cloud API calls name (the newest, July 2026).
API_VERSION = GRAPH_API_VERSION
SANDBOX_ACCESS_TOKEN = "EAAGsandbox-omnicanal-whatsapp"
SANDBOX_APP_SECRET = "omnicanal-whatsapp-sandbox-app-secret"
SANDBOX_VERIFY_TOKEN = "omnicanal-whatsapp-sandbox-verify-token"
#: Where, under the receiver, Meta posts this channel's webhooks.
CALLBACK_PATH = "/webhooks/whatsapp"


def graph_version(name: str, raw: str) -> str:
    """A Graph API version is ``vNN.N``."""
    value = raw.strip()
    if not re.fullmatch(r"v\d{1,2}\.\d", value):
        raise ConfigError(name, f"must be a Graph API version such as {API_VERSION} (got {raw!r})")
    return value


def graph_id(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.isdigit():
        raise ConfigError(name, f"must be a numeric Graph id (got {raw!r})")
    return value


#: Messages a second a business number may send by default (Cloud API throughput).
DEFAULT_MESSAGES_PER_SECOND = 80


def template_language(name: str, raw: str) -> str:
    """A template language is a locale code such as ``pt_BR`` or ``en``."""
    value = raw.strip()
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Z]{2})?", value):
        raise ConfigError(name, f"must be a template language such as pt_BR (got {raw!r})")
    return value


SETTINGS = (
    Setting(
        "OMNICANAL_WHATSAPP_API_URL",
        "api_url",
        "Base URL of the Meta Graph API the Cloud API is called at, "
        "`https://graph.facebook.com`. Default: the sandbox.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_APP_SECRET",
        "app_secret",
        "App secret of the Meta app: the receiver checks each webhook's "
        "`X-Hub-Signature-256` against it (secret). Default: the sandbox's secret.",
        SANDBOX_APP_SECRET,
        secret=True,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_VERIFY_TOKEN",
        "verify_token",
        "Verify token typed in the app's webhook settings, answered in the "
        "`hub.challenge` handshake (secret). Default: the sandbox's token.",
        SANDBOX_VERIFY_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_RECEIVER_URL",
        "receiver_url",
        "Base URL of the webhook receiver that holds WhatsApp's events (the tap reads "
        "`/events/whatsapp` there, Meta posts to `/webhooks/whatsapp`). Default: "
        "OMNICANAL_WEBHOOKS_HOST and _PORT.",
        parse=http_url,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_ACCESS_TOKEN",
        "access_token",
        "Cloud API access token (a system user's), sent as `Authorization: Bearer` "
        "(secret). Default: the sandbox's token.",
        SANDBOX_ACCESS_TOKEN,
        secret=True,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_PHONE_NUMBER_ID",
        "phone_number_id",
        "Graph id of the business phone number: the webhooks are about it and WhatsApp "
        "syncs send from it. Default: the sandbox's number.",
        "110238476119052",
        graph_id,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_WABA_ID",
        "waba_id",
        "Graph id of the WhatsApp Business Account (the webhooks' `entry[].id`). "
        "Default: the sandbox's account.",
        "104996852718431",
        graph_id,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_API_VERSION",
        "api_version",
        f"Graph API version of the Cloud API calls, `vNN.N`. Default: {API_VERSION}.",
        API_VERSION,
        graph_version,
    ),
    max_retries_setting("whatsapp", "webhook receiver"),
    Setting(
        "OMNICANAL_WHATSAPP_MESSAGES_PER_SECOND",
        "messages_per_second",
        "Throughput of the business number: messages a second a WhatsApp sync sends at "
        "most (Meta's default is 80; 1000 for numbers Meta upgraded). Default: 80.",
        DEFAULT_MESSAGES_PER_SECOND,
        whole_number(1),
    ),
    Setting(
        "OMNICANAL_WHATSAPP_TEMPLATE",
        "template",
        "Approved message template a WhatsApp sync sends when its exposure names none "
        "(meta.omnicanal_sync.template). Default: none.",
    ),
    Setting(
        "OMNICANAL_WHATSAPP_TEMPLATE_LANGUAGE",
        "template_language",
        "Language of the template when the exposure names none "
        "(meta.omnicanal_sync.language), e.g. pt_BR. Default: pt_BR.",
        "pt_BR",
        template_language,
    ),
    Setting(
        "OMNICANAL_WHATSAPP_PUSH_SECONDS",
        "push_seconds",
        "Sandbox only: every how many seconds the WhatsApp emulation posts its pending "
        "webhooks to the receiver, as Meta pushes them (0: only when asked, `POST "
        "/_sandbox/whatsapp/deliver`). Default: 0.",
        0,
        whole_number(0),
    ),
)


def api_url(settings: Settings) -> str:
    """The Graph API the Cloud API calls go to: the configured one, or the sandbox."""
    return settings.channel("whatsapp").api_url or settings.sandbox_url


def receiver_url(settings: Settings) -> str:
    """The receiver holding WhatsApp's events: the configured one, or the core receiver."""
    return settings.channel("whatsapp").receiver_url or settings.webhooks_url


def callback_url(settings: Settings) -> str:
    """The URL Meta posts WhatsApp's webhooks to (the app's "Callback URL")."""
    return receiver_url(settings) + CALLBACK_PATH


def tap_config(settings: Settings) -> dict[str, Any]:
    whatsapp = settings.channel("whatsapp")
    return {
        "receiver_url": receiver_url(settings),
        "read_token": settings.webhooks_read_token,
        "phone_number_id": whatsapp.phone_number_id,
        "max_retries": whatsapp.max_retries,
    }


def emulation_options(settings: Settings) -> dict[str, Any]:
    whatsapp = settings.channel("whatsapp")
    return {
        "access_token": whatsapp.access_token,
        "app_secret": whatsapp.app_secret,
        "verify_token": whatsapp.verify_token,
        "callback_url": callback_url(settings),
        "push_seconds": whatsapp.push_seconds,
    }


def _destination(settings: Settings, options: dict[str, Any]):
    from omnicanal.channels.whatsapp.destination import WhatsAppDestination

    return WhatsAppDestination.from_settings(settings, options)


def _destination_case():
    from omnicanal.channels.whatsapp.kit import destination_case

    return destination_case()


def _build_emulator(world, options: dict[str, Any]):
    from omnicanal.channels.whatsapp.emulation import WhatsAppEmulator

    return WhatsAppEmulator(world, **options)


def _world_slice(rng, people, as_of, earlier):
    from omnicanal.channels.whatsapp.world import build_whatsapp_inbox

    return build_whatsapp_inbox(rng, people, as_of, earlier)


def _load_slice(data: dict[str, Any]):
    from omnicanal.channels.whatsapp.world import WhatsAppInbox

    return WhatsAppInbox.from_dict(data)


def _sync_truths(world, emulator):
    from omnicanal.channels.whatsapp.truth import demo_truths

    return demo_truths(world, emulator)


CHANNEL = Channel(
    name="whatsapp",
    title="WhatsApp (Business Cloud API)",
    settings=SETTINGS,
    source=Source(
        tap="tap-whatsapp",
        streams=("messages", "statuses", "contacts", "user_preferences"),
        tap_config=tap_config,
        delivery="webhook",
        # the receiver holds the events: reading them often keeps the warehouse fresh
        schedule="*/15 * * * *",
    ),
    emulation=Emulation(
        build=_build_emulator,
        options_from_settings=emulation_options,
        probe=(
            f"/{API_VERSION}/110238476119052",
            {"Authorization": f"Bearer {SANDBOX_ACCESS_TOKEN}"},
        ),
        world_slice=_world_slice,
        load_slice=_load_slice,
    ),
    destination=_destination,
    destination_case=_destination_case,
    sync_truths=_sync_truths,
    identity=(
        IdentityFeed(
            model="stg_whatsapp__contacts",
            record_id="wa_id",
            columns={
                "wa_id": "wa_id",
                "created_at": "first_seen_at",
                "updated_at": "last_seen_at",
            },
            ids={"whatsapp": "wa_id"},
        ),
    ),
)
