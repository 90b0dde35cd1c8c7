"""What an app's git hook runs: ``python -S …/gitpaas/forkserver/hook_client.py hook pre-receive``
(see ``client``, beside it, which this loads from its cached bytecode; a script is compiled at
every run). Loaded as ``client``, that module execs the hook's module itself if it cannot load."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (PYTHONSAFEPATH leaves it out)
try:
    from client import main
finally:
    del sys.path[0]  # (the path the client sends is the interpreter's)

sys.exit(main(sys.argv[1:]))
