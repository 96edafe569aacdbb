"""``tap-whatsapp`` and ``python -m tap_whatsapp``: the tap's command line, started lean.

See :mod:`omnicanal_tapkit.startup`: the tap is imported without the libraries that
singer-sdk's imports pull in and no tap uses.
"""

from omnicanal_tapkit.startup import run_tap_cli


def main() -> None:
    """Run ``tap-whatsapp`` (the console script)."""
    run_tap_cli("tap_whatsapp.tap", "TapWhatsApp")


if __name__ == "__main__":
    main()
