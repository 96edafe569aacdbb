"""singer-sdk's walk of each record against the catalog's selection, skipped when the
catalog deselects nothing.

Before it conforms a record, singer-sdk (0.54) pops the properties the catalog
deselected: ``pop_deselected_record_properties(record, schema, mask)`` copies the record,
builds each property's breadcrumb and looks it up in the stream's ``SelectionMask``,
recursively into nested objects, for every record, as long as the compiled conformance
itself (``bench/extract``'s profiles of tap-square and tap-shopify). A mask without a
single ``False`` selects everything: a breadcrumb it does not hold takes its parent's
value, up to the stream's (selected, or the stream would not be synced), so that walk
removes nothing. Most extracts run with every property selected (omnicanal's own
extract passes no catalog).

:func:`skip_walk_when_all_selected` puts, where ``singer_sdk.streams.core`` calls that
function, one that returns at once when ``False not in mask.values()`` (a C-level scan
of the mask, a few dozen entries) and otherwise calls the SDK's, so a deselected
property is still dropped, by the SDK's code.

This is no public hook: the SDK offers none around that walk (it runs inside the
private ``Stream._generate_record_messages``). Unlike an override of that method, the
replacement pins nothing: if a later SDK moves or renames the call, the name is not
found and nothing is replaced (the SDK then walks every record as before), and the SDK's
function is still the one that drops deselected properties.
"""

from __future__ import annotations

import functools
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: Where singer-sdk calls the walk, and the function's name there.
_SDK_MODULE = "singer_sdk.streams.core"
_SDK_NAME = "pop_deselected_record_properties"


def deselects_something(mask: Mapping[t.Any, bool]) -> bool:
    """Whether ``mask`` (a stream's ``SelectionMask``) deselects any breadcrumb."""
    return False in mask.values()


def _skipping(walk: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(walk)
    def pop_deselected(
        record: dict[str, t.Any], schema: dict, mask: Mapping[t.Any, bool], *args: t.Any
    ) -> None:
        if deselects_something(mask):
            walk(record, schema, mask, *args)

    pop_deselected.omnicanal_skips_when_all_selected = True  # type: ignore[attr-defined]
    pop_deselected.sdk_walk = walk  # type: ignore[attr-defined]
    return pop_deselected


def skip_walk_when_all_selected() -> bool:
    """Install the skipping walk where singer-sdk calls it; idempotent. Returns whether
    it is in place (False: this SDK calls no such function there)."""
    import importlib  # noqa: PLC0415 - singer-sdk is imported by then

    module = importlib.import_module(_SDK_MODULE)
    walk = getattr(module, _SDK_NAME, None)
    if walk is None or not callable(walk):
        return False
    if not getattr(walk, "omnicanal_skips_when_all_selected", False):
        setattr(module, _SDK_NAME, _skipping(walk))
    return True
