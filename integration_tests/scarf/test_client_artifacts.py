"""`ScarfClient.list_artifacts`: every page of the owner's packages or tracking pixels, over real HTTP.

Against the emulator for Scarf's paging (`_links.next`), and against a small scripted server for the answers
the emulator never gives: no `_links` (paged with `after` and `per_page` instead), a next link on another host,
a next link that repeats.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from destination_scarf.errors import ScarfError, ScarfNotFound
from destination_scarf.scarf.client import ScarfClient
from support import FAST_RETRY, OWNER, TOKEN, fast_client

IDS = [f"aaaaaaaa-0000-4000-8000-{n:012d}" for n in range(25)]


@pytest.fixture
def listed(emulator):
    for n, package_id in enumerate(IDS):
        emulator.add_package(OWNER, package_id, f"lib-{n:02d}", "python")
        emulator.add_tracking_pixel(OWNER, package_id.replace("a", "c"), f"pixel-{n:02d}")
    return emulator


def test_every_page_is_read_by_following_next_links(listed):
    client = fast_client(listed)
    packages = client.list_artifacts("packages", per_page=10)
    pixels = client.list_artifacts("tracking-pixels", per_page=10)

    assert packages.complete and packages.pages == 3
    assert sorted(p["name"] for p in packages.items if p["name"].startswith("lib-")) == [f"lib-{n:02d}" for n in range(25)]
    assert len(packages.items) == 27  # and the two packages every test emulator has
    assert pixels.complete and pixels.pages == 3 and len(pixels.items) == 26
    assert client.calls["artifact list"] == 6
    queries = [r.query for r in listed.requests if r.path == f"/v2/packages/{OWNER}"]
    assert queries[0] == {"per_page": ["10"]} and all(q["after"] and q["per_page"] == ["10"] for q in queries[1:])


def test_reading_stops_at_the_page_limit_and_says_the_list_is_incomplete(listed, caplog):
    caplog.set_level(logging.WARNING)
    listing = fast_client(listed).list_artifacts("packages", per_page=10, max_pages=2)
    assert (listing.complete, listing.pages, len(listing.items)) == (False, 2, 20)
    assert any("Read 2 page(s) of the owner's packages (20 items) and stopped there (the most it reads)"
               in r.getMessage() for r in caplog.records)


def test_an_exact_multiple_of_the_page_size_is_complete(listed):
    listing = fast_client(listed).list_artifacts("packages", per_page=27, max_pages=1)
    assert (listing.complete, listing.pages, len(listing.items)) == (True, 1, 27)


def test_an_unknown_owner_is_named(listed):
    with pytest.raises(ScarfNotFound, match="Owner 'nobody' was not found at Scarf"):
        fast_client(listed, owner="nobody").list_artifacts("packages")


# ----- answers the emulator never gives --------------------------------------------------------------------------


class Scripted:
    """A loopback HTTP server answering GETs with `answer(path, query) -> (status, body)`; it records the paths
    and queries asked."""

    def __init__(self, answer: Callable[[str, dict[str, list[str]]], dict[str, Any]]) -> None:
        self.asked: list[tuple[str, dict[str, list[str]]]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)
                scripted.asked.append((parts.path, query))
                body = json.dumps(answer(parts.path, query)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(answer: Callable[[str, dict[str, list[str]]], dict[str, Any]]) -> Scripted:
        servers.append(Scripted(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client_for(server: Scripted) -> ScarfClient:
    return ScarfClient(api_url=server.url, api_token=TOKEN, owner=OWNER, retry=FAST_RETRY)


def items(start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": IDS[n], "name": f"lib-{n:02d}", "type": "npm"} for n in range(start, min(start + count, 25))]


def test_without_links_full_pages_are_followed_with_after_and_per_page(scripted):
    def answer(path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        size = int(query["per_page"][0])
        start = IDS.index(query["after"][0]) + 1 if "after" in query else 0
        return {"results": items(start, size)}

    server = scripted(answer)
    listing = client_for(server).list_artifacts("packages", per_page=10)
    assert (listing.complete, listing.pages, [i["id"] for i in listing.items]) == (True, 3, IDS)
    assert [q.get("after") for _, q in server.asked] == [None, [IDS[9]], [IDS[19]]]


def test_an_absolute_next_link_on_the_api_host_is_followed(scripted):
    server: Scripted

    def answer(path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        if "page" in query:
            return {"results": items(10, 10), "_links": {}}
        return {"results": items(0, 10), "_links": {"next": f"{server.url}/v2/packages/{OWNER}?page=2"}}

    server = scripted(answer)
    listing = client_for(server).list_artifacts("packages")
    assert (listing.complete, len(listing.items)) == (True, 20)
    assert server.asked[1] == (f"/v2/packages/{OWNER}", {"page": ["2"]})


def test_a_next_link_to_another_host_is_refused(scripted):
    server = scripted(lambda path, query: {"results": items(0, 1),
                                           "_links": {"next": "https://elsewhere.example/v2/packages/acme?p=2"}})
    with pytest.raises(ScarfError) as caught:
        client_for(server).list_artifacts("packages")
    assert caught.value.message.startswith("Scarf's list of packages pointed its next page to "
                                           "https://elsewhere.example, not to api_url's host")
    assert len(server.asked) == 1


def test_a_next_link_that_repeats_ends_the_listing_as_incomplete(scripted, caplog):
    caplog.set_level(logging.WARNING)
    server = scripted(lambda path, query: {"results": items(0, 2), "_links": {"next": f"/v2/packages/{OWNER}?n=1"}})
    listing = client_for(server).list_artifacts("packages")
    assert (listing.complete, listing.pages) == (False, 2)
    assert any("the next page was one already read" in r.getMessage() for r in caplog.records)


def test_items_without_an_id_are_left_out_and_a_missing_results_array_is_an_error(scripted):
    server = scripted(lambda path, query: {"results": [{"name": "no-id"}, {"id": IDS[0], "name": "lib-00"}, 7]})
    assert [i["id"] for i in client_for(server).list_artifacts("packages").items] == [IDS[0]]
    broken = scripted(lambda path, query: {"packages": []})
    with pytest.raises(ScarfError, match="Scarf's list of packages had no results array"):
        client_for(broken).list_artifacts("packages")
