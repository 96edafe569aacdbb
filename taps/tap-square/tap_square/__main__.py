"""``tap-square`` and ``python -m tap_square``: the tap's command line, started lean.

See :mod:`omnicanal_tapkit.startup`: the tap is imported without the libraries that
singer-sdk's imports pull in and no tap uses.
"""

from omnicanal_tapkit.startup import run_tap_cli


def main() -> None:
    """Run ``tap-square`` (the console script)."""
    run_tap_cli("tap_square.tap", "TapSquare")


if __name__ == "__main__":
    main()
