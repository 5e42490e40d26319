"""Transport-neutral request/response values passed between the HTTP layer and the API logic.

Keeping them free of ``http.server`` lets the API logic be read (and tested) without sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class ApiRequest:
    """A fully read request: decoded path parameters are passed separately by the router."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: The import an upload created (never sent; the request log attributes the call to it).
    import_id: str | None = None
    #: The imports an import read (by id, or the list) answered with (never sent; the request log keeps them).
    imports: tuple[dict, ...] = ()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json", headers or {})


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Scarf's error bodies are undocumented; the emulator uses a small ``{"message"}`` object."""
    return json_response(status, {"message": message}, headers)


def ndjson_response(status: int, items: list[Any]) -> Response:
    body = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items).encode("utf-8")
    return Response(status, body, "application/x-ndjson")
