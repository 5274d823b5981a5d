"""Run the model server: python -m aikube.serving --artifact-uri URI --version V --port P [--host H].

Prints one JSON line {"status": "ready", "host", "port", "version", "pid"} on stdout once listening
(with --port 0 the port is the free one picked); SIGTERM or SIGINT stops it and the process exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType

from aikube.adapters import read_uri
from aikube.serving.predictor import Predictor
from aikube.serving.server import make_server
from aikube.storage import NotFound


def main(argv: list[str] | None = None) -> int:
    """Load the artifact, serve until SIGTERM/SIGINT; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m aikube.serving", description="Serve one model version.")
    parser.add_argument("--artifact-uri", required=True, help="gs:// or file:// URI (or path) of the model artifact")
    parser.add_argument("--version", required=True, help="model version reported in every response")
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    try:
        predictor = Predictor.from_artifact(read_uri(args.artifact_uri))
    except (NotFound, ValueError) as exc:
        print(f"cannot load model artifact {args.artifact_uri}: {exc}", file=sys.stderr)
        return 2
    server = make_server(predictor, args.version, args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this thread: call it from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    ready = {"status": "ready", "host": host, "port": port, "version": args.version, "pid": os.getpid()}
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)  # also bounds how long SIGTERM takes to stop it
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
