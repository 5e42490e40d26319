"""The ``/_emulator/`` control endpoints: the Python API over HTTP.

The demo and the benchmark run the emulator as a subprocess, so they cannot call
:class:`ScarfEmulator` methods directly.  These endpoints need no token, are refused to
non-loopback clients, are never faulted and are not recorded in ``emu.requests``.  On an
HTTPS emulator they are HTTPS too, and a queued TLS handshake fault hits a control
connection like any other (the handshake comes before the request).

GET  /_emulator/health                 {"ok": true}
GET  /_emulator/events?owner=O[&artifact=A]   list of stored events
GET  /_emulator/stats[?owner=O]        counters (all owners when owner is omitted)
GET  /_emulator/imports?owner=O        EventImport dicts, oldest first
GET  /_emulator/requests               recorded API requests (without tokens)
GET  /_emulator/calls[?owner=O]        API calls by kind and per import (ScarfEmulator.call_counts)
GET  /_emulator/faults                 pending faults
GET  /_emulator/fault_summary          pending faults by kind, answers held/trickling/streaming now
POST /_emulator/faults                 {"action": "fail_next", "n": 2, "status": 503, "only": "any"} ...
       actions (arguments as the ScarfEmulator methods of the same name; see ACTIONS):
       fail_next, reset_next, throttle_next, delay_next,
       start_outage {"only", "status": 503 | "reset", "seconds": null | s}, end_outage,
       flaky {"every", "status", "only", "count"},
       silence_next {"n", "only"}, release_silenced (-> number released),
       trickle_next {"n", "only", "bytes_per_second", "part": "headers" | "body"},
       huge_next {"n", "only", "megabytes", "shape": "json" | "ndjson" | "line"},
       redirect_next {"n", "only", "status": 301 | 302 | 303 | 307 | 308, "location": URL | null},
       short_count_next {"n", "missing", "mode": "processed" | "total"},
       final_status_next {"n", "status"}, interim_status_next {"n", "status"},
       revoke_token_after {"token", "imports"},
       tls_reset_next {"n"}, tls_eof_next {"n"}, tls_stall_next {"n"} (HTTPS emulator only; 400 otherwise),
       list_omit_next {"n": N | null, "import_ids": [...] | null, "fraction": f | null},
       list_truncate_next {"n": N | null, "keep"}, list_ignore_per_page_next {"n": N | null, "page_size"},
       list_stale {"seconds"},
       hold_slots, release_slots, abort_import, set_rate, set_import_seconds {"seconds": s | null},
       clear_faults, clear_requests
POST /_emulator/rate                   {"events_per_second": 100 | null}
POST /_emulator/wait_idle              {"timeout": 10} -> {"idle": bool}
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .responses import Response, error, json_response

#: Fault/slot actions callable through POST /_emulator/faults, with their allowed arguments.
ACTIONS: dict[str, tuple[str, ...]] = {
    "fail_next": ("n", "status", "only", "after_processing"),
    "reset_next": ("n", "only", "after_processing"),
    "throttle_next": ("n", "retry_after", "only"),
    "delay_next": ("n", "seconds", "only"),
    "start_outage": ("only", "status", "seconds"),
    "end_outage": (),
    "flaky": ("every", "status", "only", "count"),
    "silence_next": ("n", "only"),
    "release_silenced": (),
    "trickle_next": ("n", "only", "bytes_per_second", "part"),
    "huge_next": ("n", "only", "megabytes", "shape"),
    "redirect_next": ("n", "only", "status", "location"),
    "short_count_next": ("n", "missing", "mode"),
    "final_status_next": ("n", "status"),
    "interim_status_next": ("n", "status"),
    "revoke_token_after": ("token", "imports"),
    "tls_reset_next": ("n",),
    "tls_eof_next": ("n",),
    "tls_stall_next": ("n",),
    "list_omit_next": ("n", "import_ids", "fraction"),
    "list_truncate_next": ("n", "keep"),
    "list_ignore_per_page_next": ("n", "page_size"),
    "list_stale": ("seconds",),
    "hold_slots": ("owner", "k"),
    "release_slots": ("owner",),
    "abort_import": ("owner", "import_id"),
    "set_rate": ("events_per_second",),
    "set_import_seconds": ("seconds",),
    "clear_faults": (),
    "clear_requests": (),
}


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class ControlApi:
    """Dispatches control requests to the emulator facade."""

    def __init__(self, emulator: Any) -> None:
        self._emu = emulator

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes, client: str) -> Response:
        if not _is_loopback(client):
            return error(403, "control endpoints are for loopback clients only")
        name = path[len("/_emulator"):].strip("/")
        handler = getattr(self, f"_{method.lower()}_{name}", None)
        if handler is None:
            return error(404, f"no control endpoint {method} {path}")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return error(400, "body must be JSON")
        try:
            return handler(query, payload)
        except (KeyError, ValueError, TypeError) as exc:
            return error(400, f"{type(exc).__name__}: {exc}")

    # -- GET -----------------------------------------------------------------------
    def _get_health(self, query, payload) -> Response:
        return json_response(200, {"ok": True, "url": self._emu.url})

    def _get_events(self, query, payload) -> Response:
        owner = _required(query, "owner")
        return json_response(200, self._emu.events(owner, _optional(query, "artifact")))

    def _get_stats(self, query, payload) -> Response:
        return json_response(200, self._emu.stats(_optional(query, "owner")))

    def _get_imports(self, query, payload) -> Response:
        return json_response(200, self._emu.imports(_required(query, "owner")))

    def _get_requests(self, query, payload) -> Response:
        return json_response(200, [r.to_dict() for r in self._emu.requests])

    def _get_calls(self, query, payload) -> Response:
        return json_response(200, self._emu.call_counts(_optional(query, "owner")))

    def _get_faults(self, query, payload) -> Response:
        return json_response(200, self._emu.pending_faults())

    def _get_fault_summary(self, query, payload) -> Response:
        return json_response(200, self._emu.fault_summary())

    # -- POST ----------------------------------------------------------------------
    def _post_faults(self, query, payload) -> Response:
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        action = payload.get("action")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {sorted(ACTIONS)}")
        unexpected = set(payload) - set(ACTIONS[action]) - {"action"}
        if unexpected:
            raise ValueError(f"unexpected arguments for {action}: {sorted(unexpected)}")
        arguments = {k: v for k, v in payload.items() if k != "action"}
        result = getattr(self._emu, action)(**arguments)
        return json_response(200, {"ok": True, "result": result})

    def _post_rate(self, query, payload) -> Response:
        if not isinstance(payload, dict) or "events_per_second" not in payload:
            raise ValueError('body must be {"events_per_second": number or null}')
        self._emu.set_rate(payload["events_per_second"])
        return json_response(200, {"ok": True, "events_per_second": payload["events_per_second"]})

    def _post_wait_idle(self, query, payload) -> Response:
        timeout = float((payload or {}).get("timeout", 10))
        return json_response(200, {"idle": self._emu.wait_idle(timeout)})


def _required(query: dict[str, list[str]], name: str) -> str:
    value = _optional(query, name)
    if value is None:
        raise ValueError(f"query parameter {name} is required")
    return value


def _optional(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None
