"""The sandbox: a synthetic world of people and emulations of the platforms they use.

Demo and tests run the real pipeline over real HTTP against it: taps pull from the
emulated sources, reverse-ETL syncs push into the emulated destinations, and tests
compare what arrived with the world's ground truth. What all emulations share lives
here (people, noise, Brazil, throttling, the app); each platform's emulation lives in
its channel package (``omnicanal.channels.<platform>.emulation``).
"""

from omnicanal.sandbox.app import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    SandboxServer,
    create_app,
    emulation_options,
    generate_world_file,
    serve,
)
from omnicanal.sandbox.cpf import cpf_is_valid, format_cpf
from omnicanal.sandbox.world import Person, World, generate_world

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Person",
    "SandboxServer",
    "World",
    "cpf_is_valid",
    "create_app",
    "emulation_options",
    "format_cpf",
    "generate_world",
    "generate_world_file",
    "serve",
]
