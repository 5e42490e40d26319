"""Scarf's import API: authorisation, artifacts, import creation, listing, logs and abort.

Check order for every endpoint (documented because Scarf's own order is not):
401 (no/malformed bearer header) -> 403 (unknown or revoked token) -> 404 (unknown owner)
-> 403 (token without access to the owner) -> 404 (unknown package/pixel/import)
-> 415/400 (body) -> 422 (no free import slot).
"""

from __future__ import annotations

import gzip
import re
import uuid
import zlib
from urllib.parse import quote, urlencode

from .accounts import PACKAGE_TYPES, Directory
from .faults import LIST_DEFAULT_PAGE, FaultPlan
from .import_registry import ABORT_FINISHED_IMPORT_STATUS, STATUSES, ImportRecord, ImportRegistry
from .processing import Artifact, Processor, split_lines
from .responses import ApiRequest, Response, error, json_response, ndjson_response

#: Body media types accepted on import: the spec's, and the two used in Scarf's guide.
ACCEPTED_CONTENT_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/json"})

DEFAULT_PER_PAGE = LIST_DEFAULT_PAGE  # "one report says the default page is 10"
#: Page size of the package and pixel lists without per_page.  Scarf's v2 spec gives no default (its
#: per_page example is 30); 10 is what one report says of the imports list's default.
DEFAULT_ARTIFACT_PER_PAGE = 10
TOO_MANY_ACTIVE_IMPORTS = "too many active imports"
INVALID_TOKEN = "invalid token"

_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)


class ScarfApi:
    """Endpoint logic; every public method returns a :class:`Response`."""

    def __init__(self, directory: Directory, registry: ImportRegistry, processor: Processor,
                 faults: FaultPlan | None = None) -> None:
        self._directory = directory
        self._registry = registry
        self._processor = processor
        self._faults = faults if faults is not None else FaultPlan()

    # -- access --------------------------------------------------------------------
    def authorize(self, req: ApiRequest, owner: str) -> Response | None:
        """Return the refusal for this request, or None when it may proceed."""
        match = _BEARER.match(req.headers.get("Authorization") or "")
        if match is None:
            return error(401, "missing or malformed bearer token", {"WWW-Authenticate": "Bearer"})
        owners = self._directory.token_owners(match.group(1))
        if owners is None or self._faults.token_revoked(match.group(1)):
            return error(403, INVALID_TOKEN)
        if not self._directory.has_owner(owner):
            return error(404, f"owner not found: {owner}")
        if owner not in owners:
            return error(403, f"token has no access to owner {owner}")
        return None

    # -- imports -------------------------------------------------------------------
    def import_multi(self, req: ApiRequest, owner: str) -> Response:
        return self.authorize(req, owner) or self._import(req, owner, None)

    def import_package(self, req: ApiRequest, owner: str, artifact: str) -> Response:
        denied = self.authorize(req, owner)
        if denied:
            return denied
        if self._directory.package(owner, artifact) is None:
            return error(404, f"package not found: {artifact}")
        return self._import(req, owner, ("package", artifact))

    def import_pixel(self, req: ApiRequest, owner: str, artifact: str) -> Response:
        denied = self.authorize(req, owner)
        if denied:
            return denied
        if self._directory.pixel(owner, artifact) is None:
            return error(404, f"tracking pixel not found: {artifact}")
        return self._import(req, owner, ("tracking_pixel", artifact))

    def _import(self, req: ApiRequest, owner: str, artifact: Artifact | None) -> Response:
        content_type = (req.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type not in ACCEPTED_CONTENT_TYPES:
            return error(415, f"unsupported content type {content_type or '(none)'}; send application/x-ndjson")
        body = _decode_body(req)
        if isinstance(body, Response):
            return body
        lines = split_lines(body)
        token = _BEARER.match(req.headers.get("Authorization") or "").group(1)  # authorize() checked it
        admitted, record = self._faults.admit_import(
            token, lambda: self._registry.create(owner, len(lines), quirks=self._faults.take_import_quirks)
        )
        if not admitted:  # the token was revoked by an upload running alongside this one
            return error(403, INVALID_TOKEN)
        if record is None:
            return error(422, TOO_MANY_ACTIVE_IMPORTS)
        if record.left_out:  # short_count fault: the last lines are never processed
            lines = lines[:len(lines) - record.left_out]
        snapshot = self._registry.snapshot(record)
        self._processor.launch(record, lines, artifact)
        response = json_response(200, snapshot)
        response.import_id = record.id
        return response

    def list_imports(self, req: ApiRequest, owner: str) -> Response:
        denied = self.authorize(req, owner)
        if denied:
            return denied
        statuses = req.query.get("status", [])  # matched against the reported word (faults may change it)
        unknown = [s for s in statuses if s not in STATUSES and not self._registry.reports_status(owner, s)]
        if unknown:
            return error(400, f"unknown status {unknown[0]!r}")
        per_page = _int_param(req.query, "per_page", DEFAULT_PER_PAGE)
        if per_page is None or per_page < 1:
            return error(400, "per_page must be a positive integer")
        after = req.query.get("after", [None])[-1]
        if after is not None and not _is_uuid(after):
            return error(400, "after must be an event import id")
        page = self._registry.page(owner, statuses, after, per_page, self._faults.take_list_quirks())
        response = json_response(200, {"event_imports": page})
        response.imports = tuple(page)
        return response

    def get_import(self, req: ApiRequest, owner: str, import_id: str) -> Response:
        record, refusal = self._find_import(req, owner, import_id)
        if refusal:
            return refusal
        snapshot = self._registry.snapshot(record)
        response = json_response(200, snapshot)
        response.imports = (snapshot,)
        return response

    def get_log(self, req: ApiRequest, owner: str, import_id: str) -> Response:
        record, refusal = self._find_import(req, owner, import_id)
        return refusal or ndjson_response(200, self._registry.log(record))

    def abort(self, req: ApiRequest, owner: str, import_id: str) -> Response:
        record, refusal = self._find_import(req, owner, import_id)
        if refusal:
            return refusal
        aborted = self._registry.abort(record)
        return Response(204 if aborted else ABORT_FINISHED_IMPORT_STATUS)

    def _find_import(self, req: ApiRequest, owner: str, import_id: str) -> tuple[ImportRecord | None, Response | None]:
        denied = self.authorize(req, owner)
        if denied:
            return None, denied
        record = self._registry.get(owner, import_id)
        if record is None:
            return None, error(404, f"event import not found: {import_id}")
        return record, None

    # -- artifacts -----------------------------------------------------------------
    def get_package(self, req: ApiRequest, owner: str, artifact: str) -> Response:
        denied = self.authorize(req, owner)
        if denied:
            return denied
        package = self._directory.package(owner, artifact)
        return json_response(200, package.to_dict()) if package else error(404, f"package not found: {artifact}")

    def get_pixel(self, req: ApiRequest, owner: str, artifact: str) -> Response:
        denied = self.authorize(req, owner)
        if denied:
            return denied
        pixel = self._directory.pixel(owner, artifact)
        return json_response(200, pixel.to_dict()) if pixel else error(404, f"tracking pixel not found: {artifact}")

    # The two artifact lists (getPackages, getTrackingPixels) page alike:
    #
    #   ?per_page=N   page size, a positive integer; default DEFAULT_ARTIFACT_PER_PAGE (10).  The v2
    #                 spec names the parameter but gives no default (its example is 30) and no maximum.
    #   ?after=ID     where the page starts: after the artifact with this id.  The spec names the
    #                 parameter, a string; its pixel example is an id, its package example a name
    #                 ("library/ubuntu").  The emulator orders both lists by id (Python string order;
    #                 names repeat across package types, so a name cannot be a cursor) and treats
    #                 ``after`` as a bound: any non-empty string works, an unknown one is not an error.
    #   ?type=T       getPackages only, repeatable (explode=true): only packages of these types.
    #   ?permission=  getPackages only: accepted and ignored (the emulator has no roles, and the excerpt
    #                 leaves the PackagePermissionLevel schema out).  Other parameters are ignored too.
    #
    # The answer is {"results": [...], "_links": {"self": ..., "next": ...}} (the spec's CursorLinks).
    # ``next`` is present only when more artifacts follow; it is a relative URL (the spec gives its
    # form nowhere): the list's path with after=<id of the page's last artifact>, per_page=N and any
    # type filters.  ``self`` is the same for this page.  Bad per_page, after or type: 400.
    def list_packages(self, req: ApiRequest, owner: str) -> Response:
        """getPackages: one page of the owner's packages (see the comment above)."""
        denied = self.authorize(req, owner)
        if denied:
            return denied
        types = req.query.get("type", [])
        unknown = [t for t in types if t not in PACKAGE_TYPES]
        if unknown:
            return error(400, f"unknown package type {unknown[0]!r}; one of {', '.join(sorted(PACKAGE_TYPES))}")
        paging = _artifact_paging(req.query)
        if isinstance(paging, Response):
            return paging
        after, per_page = paging
        packages, more = self._directory.package_page(owner, after, per_page, types)
        return json_response(200, _artifact_page(
            f"/v2/packages/{quote(owner, safe='')}", [p.to_dict() for p in packages], more, after, per_page,
            [("type", t) for t in types],
        ))

    def list_pixels(self, req: ApiRequest, owner: str) -> Response:
        """getTrackingPixels: one page of the owner's tracking pixels, paged like :meth:`list_packages`."""
        denied = self.authorize(req, owner)
        if denied:
            return denied
        paging = _artifact_paging(req.query)
        if isinstance(paging, Response):
            return paging
        after, per_page = paging
        pixels, more = self._directory.pixel_page(owner, after, per_page)
        return json_response(200, _artifact_page(
            f"/v2/tracking-pixels/{quote(owner, safe='')}", [p.to_dict() for p in pixels], more, after, per_page,
        ))


def _artifact_paging(query: dict[str, list[str]]) -> tuple[str | None, int] | Response:
    """(after, per_page) of an artifact list request, or its 400."""
    per_page = _int_param(query, "per_page", DEFAULT_ARTIFACT_PER_PAGE)
    if per_page is None or per_page < 1:
        return error(400, "per_page must be a positive integer")
    after = query.get("after", [None])[-1]
    if after == "":
        return error(400, "after must be the id of the last artifact of the previous page")
    return after, per_page


def _artifact_page(path: str, results: list[dict], more: bool, after: str | None, per_page: int,
                   filters: list[tuple[str, str]] | None = None) -> dict:
    """The page body: results, a ``self`` link, and a ``next`` link when more follow."""
    def link(start: str | None) -> str:
        params = ([("after", start)] if start is not None else []) + [("per_page", str(per_page))] + (filters or [])
        return f"{path}?{urlencode(params, quote_via=quote)}"

    links = {"self": link(after)}
    if more:
        links["next"] = link(results[-1]["id"])
    return {"results": results, "_links": links}


def _decode_body(req: ApiRequest) -> bytes | Response:
    encoding = (req.headers.get("Content-Encoding") or "").strip().lower()
    if encoding in ("", "identity"):
        return req.body
    if encoding not in ("gzip", "x-gzip"):
        return error(415, f"unsupported content encoding {encoding}")
    try:
        return gzip.decompress(req.body)
    except (OSError, EOFError, zlib.error):
        return error(400, "body is not valid gzip although Content-Encoding says gzip")


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
