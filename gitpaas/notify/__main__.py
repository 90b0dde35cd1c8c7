"""``python -m gitpaas.notify deliver FILE``: the command ``announce_release`` starts."""

from __future__ import annotations

import sys

from gitpaas.notify.deliver import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
