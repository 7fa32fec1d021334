"""Screenshot an einsearch HTML report with the system's headless Chromium (for docs/).

    python scripts/report_screenshot.py report.html docs/report.png [--width 1400] [--height 2200]

Needs Debian's chromium and chromium-driver and the `selenium` package (the dev extra).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("report_screenshot")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2200)
    parser.add_argument("--section", default=None, help="Scroll to the element with this id first.")
    args = parser.parse_args()
    from einsearch.report.browser import chromium

    drv = chromium(args.width, args.height)
    try:
        drv.get(args.report.resolve().as_uri())
        drv.execute_script("return document.fonts ? document.fonts.ready : null")
        if args.section:
            drv.execute_script("document.getElementById(arguments[0]).scrollIntoView()", args.section)
        drv.save_screenshot(str(args.out))
    finally:
        drv.quit()
    log.info("wrote %s (%d bytes)", args.out, args.out.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
