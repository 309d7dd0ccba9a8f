"""Run localstripe for tests: bound to 127.0.0.1 only, its pickled state in a
directory we choose (it defaults to all interfaces and /tmp/localstripe.pickle).

    python -m billing.tests.localstripe_server STATE_DIR

Binds an ephemeral port, prints "PORT <n>" once listening, then serves until killed.
"""

import os
import pickle
import socket
import sys

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def main() -> None:
    state = os.path.join(sys.argv[1], "localstripe.pickle")

    def load(self) -> None:
        try:
            with open(state, "rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        self.clear()
        self.update(old)

    def dump(self) -> None:
        with open(state, "wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump
    resources.store.try_load_from_disk()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, access_log=None, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
