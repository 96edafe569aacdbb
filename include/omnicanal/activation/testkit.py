"""The destination test kit: what every destination must do, checked against its emulation.

The sync engine relies on a destination's contract (see :class:`Destination`): one
outcome per row, a refused row is a failed outcome and not an exception, upserts are
idempotent, a removal takes away only what it names, and a whole-destination failure
(bad credentials) raises a :class:`SyncError` that names the setting to fix. Each
channel with a destination declares a :class:`DestinationCase` (rows its platform
accepts, one it refuses, how to read back what the emulation holds) and the channel
contract test runs :func:`check_destination` over it, through the sandbox, over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omnicanal.activation.destination import Row
from omnicanal.errors import SyncError


@dataclass(frozen=True)
class DestinationCase:
    """What the kit needs to know about one destination.

    - ``row(n)``: the n-th of as many distinct rows the platform accepts as asked for;
    - ``change(row)``: the same key with a changed payload;
    - ``refused``: a row the platform refuses (its outcome must say why);
    - ``env(sandbox_url)``: the settings that point the destination at the sandbox;
    - ``bad_credentials``: settings that make the platform reject every call, and
      ``credential_setting``, the variable the error must name;
    - ``held(emulator)``: what the emulation holds now, ``{key: payload}`` in the rows'
      own field names, for the keys it holds as active (removed ones left out);
    - ``removes``: False for a destination whose writes cannot be taken back (a
      message sent): the kit then checks that it says so (``supports_remove`` False,
      so the engine never calls ``remove``) instead of checking removals.
    """

    row: Callable[[int], Row]
    change: Callable[[Row], Row]
    refused: Row
    env: Callable[[str], dict[str, str]]
    bad_credentials: Mapping[str, str]
    credential_setting: str
    held: Callable[[Any], dict[str, dict]]
    removes: bool = True


def _assert_holds(case: DestinationCase, emulator: Any, rows: list[Row]) -> None:
    held = case.held(emulator)
    assert set(held) == {row.key for row in rows}, (sorted(held), [r.key for r in rows])
    for row in rows:
        for field, value in row.payload.items():
            assert held[row.key].get(field) == value, (row.key, field, held[row.key])


def check_destination(
    channel, case: DestinationCase, sandbox_url: str, emulator: Any, base_env: Mapping[str, str]
) -> None:
    """Run the whole contract; an AssertionError or exception says what broke."""
    from omnicanal.settings import get_settings

    settings = get_settings({**base_env, **case.env(sandbox_url)})
    rows = [case.row(n) for n in range(3)]
    assert len({r.key for r in rows}) == len(rows), "row(n) must give distinct keys"
    destination = channel.destination(settings, {})
    try:
        assert destination.batch_size >= 1
        destination.check()

        # every row in, one outcome per row, in order
        outcomes = destination.upsert(rows)
        assert [(o.key, o.ok) for o in outcomes] == [(r.key, True) for r in rows], outcomes
        _assert_holds(case, emulator, rows)

        # the same rows again change nothing; changed rows replace, never duplicate
        assert all(o.ok for o in destination.upsert(rows))
        _assert_holds(case, emulator, rows)
        changed = [case.change(rows[0]), *rows[1:]]
        assert changed[0].key == rows[0].key and changed[0].payload != rows[0].payload
        assert all(o.ok for o in destination.upsert(changed[:1]))
        _assert_holds(case, emulator, changed)

        # a refused row fails alone, with a reason; the good row beside it goes through
        mixed = destination.upsert([case.refused, changed[1]])
        assert [(o.key, o.ok) for o in mixed] == [(case.refused.key, False), (changed[1].key, True)]
        assert mixed[0].error, "a refused row must say why"
        _assert_holds(case, emulator, changed)

        supports_remove = getattr(destination, "supports_remove", True)
        kept = changed
        if case.removes:
            assert supports_remove is True, (
                "the case says the destination removes; supports_remove must not be False"
            )
            # a removal takes away what it names and nothing else; removing again is fine
            removed = destination.remove([changed[0]])
            assert [(o.key, o.ok) for o in removed] == [(changed[0].key, True)], removed
            _assert_holds(case, emulator, changed[1:])
            assert [o.ok for o in destination.remove([changed[0]])] == [True]
            _assert_holds(case, emulator, changed[1:])
            kept = changed[1:]
        else:
            # writes that cannot be taken back: the engine must never be asked to remove
            assert supports_remove is False, (
                "a destination whose case has removes=False must say supports_remove = False"
            )

        # a batch larger than the destination's batch size is split, nothing lost
        many = [case.row(n) for n in range(3, destination.batch_size + 5)]
        outcomes = destination.upsert(many)
        assert [(o.key, o.ok) for o in outcomes] == [(r.key, True) for r in many]
        _assert_holds(case, emulator, kept + many)
    finally:
        destination.close()

    # bad credentials fail the whole destination, naming the setting to fix
    bad = get_settings({**base_env, **case.env(sandbox_url), **case.bad_credentials})
    destination = channel.destination(bad, {})
    try:
        try:
            destination.check()
        except SyncError as exc:
            assert case.credential_setting in str(exc), str(exc)
        else:
            raise AssertionError("check() accepted bad credentials")
    finally:
        destination.close()
