"""Package and tracking pixel names in `check` (constants in field_mappings) and `preview` (the id a name stands
for, or why names could not be checked), against the emulator's lists."""

from __future__ import annotations

import logging
import socket
from typing import Any

import orjson
import pytest

from destination_scarf.airbyte.check import CHECK_RETRY, run_check
from support import (
    OWNER,
    PACKAGE,
    catalog,
    make_config,
    messages_of,
    now_iso,
    record,
    run_connector,
    write_json,
)

RIGHT_PAD = "bbbbbbbb-0000-4000-8000-000000000001"
DOCKER_RIGHT_PAD = "bbbbbbbb-0000-4000-8000-000000000002"
LEFT_PAD = "bbbbbbbb-0000-4000-8000-000000000003"
DOCS_PIXEL = "cccccccc-0000-4000-8000-000000000001"
LISTS = {f"/v2/packages/{OWNER}", f"/v2/tracking-pixels/{OWNER}"}


@pytest.fixture
def named(emulator):
    emulator.add_package(OWNER, RIGHT_PAD, "right-pad", "npm")
    emulator.add_package(OWNER, LEFT_PAD, "left-pad", "npm")
    emulator.add_tracking_pixel(OWNER, DOCS_PIXEL, "docs")
    return emulator


def list_reads(emu) -> int:
    return sum(1 for r in emu.requests if r.path in LISTS)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----- check -------------------------------------------------------------------------------------------------------


def check(config: dict[str, Any]) -> tuple[str, str]:
    status = run_check(config, logger=logging.getLogger("test"))
    return status.status.value, status.message or ""


def test_check_resolves_constant_names(named):
    config = make_config(named, field_mappings=[{"scarf_field": "$package", "constant": "right-pad"},
                                               {"scarf_field": "$tracking_pixel", "constant": "docs",
                                                "stream": "views"}])
    assert check(config) == ("SUCCEEDED", "")
    assert list_reads(named) == 2  # one page of each list


def test_check_fails_naming_an_unknown_constant_name_and_the_closest_names(named):
    config = make_config(named, field_mappings=[{"scarf_field": "$package", "constant": "Right-Pad"}])
    status, message = check(config)
    assert status == "FAILED"
    assert message == (
        "The destination's configuration is not valid: field_mappings: the constant $package for all streams: "
        "'Right-Pad' is not the name or id of a package of owner 'acme' (4 packages listed; names are matched "
        "exactly; the closest: 'right-pad').")


def test_check_fails_on_an_ambiguous_constant_name_and_takes_its_qualified_form(named):
    named.add_package(OWNER, DOCKER_RIGHT_PAD, "right-pad", "docker")
    status, message = check(make_config(named, field_mappings=[{"scarf_field": "$package", "constant": "right-pad"}]))
    assert status == "FAILED"
    assert "'right-pad' is ambiguous" in message and "write 'docker:right-pad' or 'npm:right-pad'" in message
    assert check(make_config(named, field_mappings=[{"scarf_field": "$package", "constant": "npm:right-pad"}])) == (
        "SUCCEEDED", "")


def test_check_reads_no_list_without_a_constant_name(named):
    assert check(make_config(named, field_mappings=[{"scarf_field": "$package", "constant": PACKAGE}])) == (
        "SUCCEEDED", "")
    assert list_reads(named) == 0


# ----- preview -----------------------------------------------------------------------------------------------------


def preview(emu, tmp_path, config: dict[str, Any], data: list[dict[str, Any]], *args: str):
    config_path = write_json(tmp_path / "config.json", config)
    catalog_path = write_json(tmp_path / "catalog.json", catalog("downloads"))
    stdin = b"".join(
        orjson.dumps(record("downloads", {"time": now_iso(-60), **row})) + b"\n" for row in data)
    result = run_connector(["preview", "--config", config_path, "--catalog", catalog_path, *args], stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    assert [r for r in emu.requests if r.method != "GET" or r.path not in LISTS] == []  # nothing sent
    return result


def test_preview_with_a_usable_token_shows_the_id_a_name_stands_for(named, tmp_path):
    result = preview(named, tmp_path, make_config(named), [{"package": "right-pad"}, {"pixel": "docs"},
                                                           {"package": "right-pda"}, {"package": PACKAGE}])
    text = result.stdout.decode()
    assert f'"{RIGHT_PAD}"  <- package (name \'right-pad\')\n' in text
    assert f'"{DOCS_PIXEL}"  <- pixel (name \'docs\')\n' in text
    assert ("Record #3 of stream 'downloads' (input line 3) would be rejected: $package 'right-pda' is not the name "
            "or id of a package of owner 'acme' (4 packages listed; names are matched exactly; the closest: "
            "'right-pad'") in text
    assert f'"{PACKAGE}"  <- package\n' in text
    assert ("Names in $package and $tracking_pixel were checked against the owner's 4 packages and 2 tracking "
            "pixels, as a sync checks them.") in text
    assert list_reads(named) == 2


def test_preview_json_says_what_was_checked(named, tmp_path):
    out = messages_of(preview(named, tmp_path, make_config(named), [{"package": "left-pad"}], "--json").stdout)
    assert out[0]["event"]["$package"] == LEFT_PAD and out[0]["sources"]["$package"] == "package (name 'left-pad')"
    assert out[-1]["summary"]["names"] == {"checked": True, "packages": 4, "tracking_pixels": 2, "reason": None,
                                           "unchecked_values": 0}


def test_preview_with_the_placeholder_token_shows_names_unchecked_and_calls_nothing(named, tmp_path):
    config = make_config(named, api_token="preview")
    result = preview(named, tmp_path, config, [{"package": "right-pad"}, {"package": PACKAGE}])
    text = result.stdout.decode()
    assert '"right-pad"' in text and "<- package (name not checked)\n" in text
    assert f'"{PACKAGE}"  <- package\n' in text  # an id needs no check
    assert ("Names in $package and $tracking_pixel could not be checked (the config's api_token is the placeholder "
            "'preview'): they are shown as given.") in text
    assert named.requests == []
    out = messages_of(preview(named, tmp_path, config, [{"package": "right-pad"}], "--json").stdout)
    assert out[0]["sources"]["$package"] == "package (name not checked)"
    assert out[-1]["summary"]["names"] == {"checked": False, "packages": None, "tracking_pixels": None,
                                           "reason": "the config's api_token is the placeholder 'preview'",
                                           "unchecked_values": 1}


def test_preview_says_nothing_of_unchecked_names_when_every_value_shown_is_an_id(named, tmp_path):
    config = make_config(named, api_token="preview")
    text = preview(named, tmp_path, config, [{"package": PACKAGE}]).stdout.decode()
    assert f'"{PACKAGE}"  <- package\n' in text
    assert "could not be checked" not in text and "not checked" not in text
    out = messages_of(preview(named, tmp_path, config, [{"package": PACKAGE}], "--json").stdout)
    assert out[-1]["summary"]["names"]["checked"] is False
    assert out[-1]["summary"]["names"]["unchecked_values"] == 0


def test_preview_without_a_network_says_names_could_not_be_checked_and_goes_on(named, tmp_path):
    config = make_config(named, api_url=f"http://127.0.0.1:{closed_port()}")
    text = preview(named, tmp_path, config, [{"package": "right-pad"}]).stdout.decode()
    assert "would be sent" in text and "<- package (name not checked)" in text
    assert "could not be checked (the owner's lists could not be read: " in text
    assert "was refused" in text or "could not reach Scarf" in text


def test_preview_makes_one_attempt_at_a_list_scarf_fails_and_goes_on(named, tmp_path):
    """A preview is a quick look: a failing list is not retried (a sync retries it within its budget)."""
    named.start_outage(only="artifact-get", status=503)
    text = preview(named, tmp_path, make_config(named), [{"package": "right-pad"}]).stdout.decode()
    assert "<- package (name not checked)" in text and "503" in text
    assert list_reads(named) == 1  # the packages' first page, once; the pixels' list is not reached


def test_check_makes_its_stated_attempts_at_a_list_scarf_fails(named):
    named.start_outage(only="artifact-get", status=503)
    config = make_config(named, field_mappings=[{"scarf_field": "$package", "constant": "right-pad"}])
    status, message = check(config)
    assert status == "FAILED" and "503" in message
    assert list_reads(named) == CHECK_RETRY.max_attempts


def test_preview_shows_no_names_note_for_a_single_target(named, tmp_path):
    config = make_config(named, api_token="preview", target={"target_type": "package", "package_id": PACKAGE})
    text = preview(named, tmp_path, config, [{"package": "right-pad"}]).stdout.decode()
    assert "not checked" not in text and "Names in" not in text
