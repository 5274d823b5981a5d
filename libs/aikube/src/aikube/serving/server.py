"""A minimal JSON model server on the standard library's threading HTTP server.

GET /healthz -> 200 {"status": "ok", "version": V}
POST /predict {"records": [{...}, ...]} -> 200 {"predictions": [...], "version": V}
    (classification adds "classes": the labels of the probability columns)
Bad input -> 400 {"error": "..."}; unknown path -> 404; unexpected failure -> 500, all with a JSON body.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aikube.serving.predictor import Predictor

__all__ = ["MAX_BODY_BYTES", "make_server"]

MAX_BODY_BYTES = 10 * 1024 * 1024
_log = logging.getLogger("aikube.serving")


class _BadRequest(ValueError):
    """The request itself is malformed (400)."""


def _records(body: bytes) -> list[dict[str, Any]]:
    """Parse a predict body into its list of records."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadRequest(f"body is not JSON: {exc}") from exc
    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not records:
        raise _BadRequest('body must be {"records": [ {column: value, ...}, ... ]} with at least one record')
    return records


def make_server(predictor: Predictor, version: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Bind a server for `predictor` (port 0 picks a free port: read it from server.server_address)."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                self._reply(HTTPStatus.OK, {"status": "ok", "version": version})
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/predict":
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"Content-Length must be 0..{MAX_BODY_BYTES}"})
                return
            try:
                predictions = predictor.predict(_records(self.rfile.read(length)))
            except (ValueError, TypeError) as exc:  # bad records: missing columns, wrong types, unknown values
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            except Exception as exc:  # keep serving; the caller gets a JSON error, the log the traceback
                _log.exception("prediction failed")
                self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"prediction failed: {exc}"})
                return
            body: dict[str, Any] = {"predictions": predictions.tolist(), "version": version}
            if predictor.classes is not None:
                body["classes"] = predictor.classes
            self._reply(HTTPStatus.OK, body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            _log.debug("%s " + format, self.address_string(), *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True  # a hung client must not block shutdown
    return server
