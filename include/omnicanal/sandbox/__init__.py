"""The sandbox: a synthetic world of people and emulations of the platforms they use.

Demo and tests run the real pipeline over real HTTP against it: taps pull from the
emulated sources (Shopify), reverse-ETL syncs push into the emulated destinations
(Mailchimp), and tests compare what arrived with the world's ground truth.
"""

from omnicanal.sandbox.app import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SandboxServer,
    create_app,
    generate_world_file,
    serve,
)
from omnicanal.sandbox.cpf import cpf_is_valid, format_cpf
from omnicanal.sandbox.mailchimp import (
    DEFAULT_LIST_ID,
    DEFAULT_MAILCHIMP_API_KEY,
    MailchimpEmulator,
    subscriber_hash,
)
from omnicanal.sandbox.shopify import DEFAULT_SHOPIFY_TOKEN, ShopifyEmulator
from omnicanal.sandbox.world import Person, World, generate_world

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_LIST_ID",
    "DEFAULT_MAILCHIMP_API_KEY",
    "DEFAULT_PORT",
    "DEFAULT_SHOPIFY_TOKEN",
    "MailchimpEmulator",
    "Person",
    "SandboxServer",
    "ShopifyEmulator",
    "World",
    "cpf_is_valid",
    "create_app",
    "format_cpf",
    "generate_world",
    "generate_world_file",
    "serve",
    "subscriber_hash",
]
