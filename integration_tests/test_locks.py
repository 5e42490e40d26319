"""The locks: requirements.lock (what the image installs) and requirements-tests.lock (what `make install`
installs for the suite) pin exactly what setup.py needs, agree with each other, and are what runs here.

The checks on setup.py's requirements read the metadata of the packages installed in the running
virtualenv, which `make install` builds from requirements-tests.lock.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support import ROOT, parse_lock

RUNTIME = parse_lock(ROOT / "requirements.lock")
TESTS = parse_lock(ROOT / "requirements-tests.lock")
PACKAGE_NAME = "destination-scarf"
BUILD_REQUIRES = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]]


def requirement_closure(name: str, extras: frozenset[str] = frozenset()) -> dict[str, str]:
    """{canonical name: installed version} of everything `name[extras]` needs, transitively, here.

    Fails when a requirement is missing or its installed version is outside the range asked for:
    then setup.py and the locks disagree, and `make lock` resolves them again.
    """
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(name, extras)]
    while pending:
        current, current_extras = pending.pop()
        if (canonicalize_name(current), current_extras) in seen:
            continue
        seen.add((canonicalize_name(current), current_extras))
        dist = importlib.metadata.distribution(current)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": extra})
                                              for extra in current_extras | {""}):
                continue
            required = canonicalize_name(requirement.name)
            try:
                version = importlib.metadata.version(required)
            except importlib.metadata.PackageNotFoundError:
                raise AssertionError(f"{current} requires {requirement}, which is not installed: run make lock") from None
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{current} requires {requirement}, and {version} is installed: run make lock")
            found[required] = version
            pending.append((required, frozenset(requirement.extras)))
    return found


def test_every_entry_is_an_exact_pin_with_sha256_hashes():
    for lock in (RUNTIME, TESTS):
        assert lock.packages
        for name, package in lock.packages.items():
            assert package.hashes, f"{name} has no hash: pip --require-hashes would refuse the lock"
            assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in package.hashes), (name, package.hashes)


def test_the_locks_are_resolved_for_the_python_running_the_suite():
    """The image's Python (3.11 in the base image) is the one CI runs and the one both locks are for."""
    running = "{}.{}".format(*sys.version_info[:2])
    assert RUNTIME.python_version == TESTS.python_version == running


def test_the_tests_lock_is_the_runtime_lock_plus_the_test_extras():
    for name, package in RUNTIME.packages.items():
        assert TESTS.packages.get(name) == package, f"the locks disagree on {name}"
    only_for_tests = set(TESTS.packages) - set(RUNTIME.packages)
    runtime = requirement_closure(PACKAGE_NAME)
    with_tests = requirement_closure(PACKAGE_NAME, frozenset({"tests"}))
    assert only_for_tests == set(with_tests) - set(runtime)
    assert {"pytest", "pyyaml"} <= set(with_tests)


def test_the_runtime_lock_is_what_setup_py_and_the_build_need():
    """No more and no less: setup.py's install_requires, transitively, and pyproject.toml's build backend."""
    needed = set(requirement_closure(PACKAGE_NAME))
    for requirement in BUILD_REQUIRES:
        name = canonicalize_name(requirement.name)
        needed.add(name)
        assert requirement.specifier.contains(RUNTIME.packages[name].version), requirement
    assert set(RUNTIME.packages) == needed


def test_the_suite_runs_exactly_the_locked_versions():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    for name, package in TESTS.packages.items():
        assert installed.get(name) == package.version, f"{name}: {installed.get(name)} installed, {package.version} locked"
    outside = set(installed) - set(TESTS.packages) - {canonicalize_name(PACKAGE_NAME), "pip"}
    assert not outside, f"installed but not locked: {sorted(outside)} (make clean install)"
