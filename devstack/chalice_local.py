"""`chalice local`, with a listen backlog that survives a burst of browsers or a load test.

Chalice's threaded dev server keeps socketserver's default backlog of 5 pending connections, so a burst of
concurrent clients gets connection resets before any thread sees them. Everything else is `chalice local`.
"""

import sys

from chalice import local
from chalice.cli import main

local.ThreadedHTTPServer.request_queue_size = 128

if __name__ == "__main__":
    sys.exit(main())
