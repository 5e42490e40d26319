"""Packaging: metadata.yaml, the Dockerfile, setup.py and the icon agree, and the image's install works.

There is no Docker engine here, so the image's install is reproduced outside Docker: a fresh
virtualenv stands in for the base image's Python (the same 3.11, see test_locks.py), the build
context is what .dockerignore lets through, each RUN step's bind mounts are laid out from that
context under a temporary "image" root and removed after the step (as BuildKit does), the
Dockerfile's `pip install` commands run in the venv from the WORKDIR with the base image's
PIP_CACHE_DIR, and the installed entry point is run from elsewhere. That venv is built once per
session (about a minute: airbyte-cdk and its dependencies are downloaded).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pytest
import yaml
from airbyte_cdk.models.connector_metadata import ConnectorLanguage, MetadataFile
from packaging.utils import canonicalize_name

from destination_scarf.config import DEFAULT_API_URL
from support import OWNER, PACKAGE, ROOT, TOKEN, messages_of, parse_lock

SPEC = orjson.loads((ROOT / "spec.json").read_bytes())
ENTRYPOINT_NAME = "destination-scarf"
#: Paths of this repo that must never reach the image (README: "not shipped in the image").
NOT_SHIPPED = ("scarf_emulator", "unit_tests", "integration_tests", "tests", "demo", "bench")
#: Facts about Airbyte's Python connector base image that the Dockerfile relies on; its definition is
#: docker-images/Dockerfile.python-connector-base in airbytehq/airbyte. It creates the user `airbyte`
#: (uid 1000) and sets PIP_CACHE_DIR, which the image's pip installs must leave empty.
BASE_IMAGE_REPOSITORY = "docker.io/airbyte/python-connector-base"
BASE_IMAGE_USER = "airbyte"
BASE_IMAGE_ENV = {"PIP_CACHE_DIR": "/pip_cache"}
RUNTIME_LOCK = parse_lock(ROOT / "requirements.lock")


# --- parsing the three files ------------------------------------------------------------------------


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, name: str) -> list[str]:
        return [args for instruction, args in self.instructions if instruction == name]

    def one(self, name: str) -> str:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name} instruction, found {found}"
        return found[0]

    def pairs(self, name: str) -> dict[str, str]:
        """key=value arguments of LABEL or ENV instructions (the legacy `ENV key value` form too)."""
        result = {}
        for args in self.all(name):
            tokens = shlex.split(args)
            if name == "ENV" and len(tokens) >= 2 and "=" not in tokens[0]:
                result[tokens[0]] = " ".join(tokens[1:])
                continue
            for token in tokens:
                key, _, value = token.partition("=")
                result[key] = value
        return result


def parse_dockerfile(path: Path) -> Dockerfile:
    dockerfile = Dockerfile()
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        instruction, _, args = line.partition(" ")
        dockerfile.instructions.append((instruction.upper(), args.strip()))
    return dockerfile


def exec_form(args: str) -> list[str]:
    """An ENTRYPOINT/CMD in exec (JSON array) form; shell form is split as the shell would."""
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


@dataclass
class SetupPy:
    version: str
    keywords: dict[str, Any]


def parse_setup_py(path: Path) -> SetupPy:
    """VERSION and the literal keyword arguments of setup(), without running setup.py."""
    tree = ast.parse(path.read_text())
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"]
    assert len(calls) == 1
    keywords = {}
    for keyword in calls[0].keywords:
        if isinstance(keyword.value, ast.Name) and keyword.value.id in constants:
            keywords[keyword.arg] = constants[keyword.value.id]
            continue
        try:
            keywords[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            keywords[keyword.arg] = None  # computed (find_packages(...)): not compared here
    return SetupPy(version=constants["VERSION"], keywords=keywords)


DOCKERFILE = parse_dockerfile(ROOT / "Dockerfile")
SETUP = parse_setup_py(ROOT / "setup.py")
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
DATA = METADATA["data"]


# --- metadata.yaml ----------------------------------------------------------------------------------


def test_metadata_loads_with_the_cdks_model():
    loaded = MetadataFile.from_file(ROOT / "metadata.yaml")

    assert loaded.data.dockerRepository == DATA["dockerRepository"]
    assert loaded.data.dockerImageTag == DATA["dockerImageTag"]
    assert loaded.data.language == ConnectorLanguage.PYTHON
    assert loaded.data.connectorBuildOptions is not None and loaded.data.connectorBuildOptions.baseImage


def test_metadata_has_the_fields_airbytes_connector_schema_needs():
    assert DATA["name"] == "Scarf"
    assert str(uuid.UUID(DATA["definitionId"])) == DATA["definitionId"].lower()
    assert DATA["connectorType"] == "destination"
    assert DATA["connectorSubtype"] == "api"
    assert DATA["dockerRepository"] == "airbyte/destination-scarf"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?", DATA["dockerImageTag"])
    assert DATA["license"] == "MIT"
    assert urllib.parse.urlsplit(DATA["documentationUrl"]).scheme == "https"
    assert DATA["githubIssueLabel"] == "destination-scarf"
    assert DATA["releaseStage"] in ("alpha", "beta", "generally_available", "custom")
    assert DATA["supportLevel"] in ("community", "certified", "archived")
    assert {"language:python", "cdk:python"} <= set(DATA["tags"])
    assert "api.scarf.sh" in DATA["allowedHosts"]["hosts"]
    assert DATA["supportsDataActivation"] is True
    jobs = DATA["resourceRequirements"]["jobSpecific"]
    assert "sync" in {job["jobType"] for job in jobs}
    for job in jobs:
        assert job["resourceRequirements"]
        assert set(job["resourceRequirements"]) <= {"cpu_request", "cpu_limit", "memory_request", "memory_limit"}


#: The keys ConnectorMetadataDefinitionV0 (airbytehq/airbyte, metadata_service) allows under `data`, which has
#: additionalProperties: false: a misspelt key fails Airbyte's metadata validation.
METADATA_DATA_KEYS = {
    "name", "icon", "definitionId", "connectorBuildOptions", "connectorTestSuitesOptions", "connectorType",
    "dockerRepository", "dockerImageTag", "supportsDbt", "supportsNormalization", "license", "documentationUrl",
    "externalDocumentationUrls", "githubIssueLabel", "maxSecondsBetweenMessages", "releaseDate", "protocolVersion",
    "erdUrl", "connectorSubtype", "releaseStage", "supportLevel", "tags", "registryOverrides", "allowedHosts",
    "releases", "normalizationConfig", "suggestedStreams", "resourceRequirements", "ab_internal", "remoteRegistries",
    "supportsRefreshes", "generated", "supportsFileTransfer", "supportsDataActivation", "connectorIPCOptions",
}


def test_metadata_uses_only_keys_the_current_schema_knows():
    assert set(METADATA) == {"data", "metadataSpecVersion"}
    assert set(DATA) <= METADATA_DATA_KEYS, set(DATA) - METADATA_DATA_KEYS


def test_icon_is_the_icon_svg_next_to_the_metadata():
    """Airbyte's metadata service publishes a connector's icon from the file `icon.svg` in its folder."""
    assert DATA["icon"] == "icon.svg"
    icon = ROOT / DATA["icon"]
    assert icon.is_file()
    root = ElementTree.parse(icon).getroot()
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")


def test_the_pypi_entry_names_the_package_pyairbyte_runs_and_promises_no_pypi_release():
    """PyAirbyte installs a registry connector with `pip install <packageName>` when `enabled` is true. This
    package is not on PyPI, so it stays false; its name is setup.py's, which is also the connector's name
    (`ab.get_destination("destination-scarf", ...)`) and the console script PyAirbyte runs."""
    pypi = DATA["remoteRegistries"]["pypi"]
    assert pypi == {"enabled": False, "packageName": SETUP.keywords["name"]}
    assert pypi["packageName"] == DATA["dockerRepository"].split("/")[-1] == ENTRYPOINT_NAME


def test_release_date_is_the_first_releases_date_in_the_changelog():
    rows = re.findall(r"^\| (\d+)\.(\d+)\.(\d+) \| (\d{4}-\d{2}-\d{2}) \|", (ROOT / "README.md").read_text(),
                      re.MULTILINE)
    first = min(rows, key=lambda row: tuple(int(part) for part in row[:3]))
    assert DATA["releaseDate"] == first[3]


def test_refreshes_are_not_claimed():
    """A refresh that replaces a stream's data would need Scarf to delete events, which it cannot."""
    assert DATA["supportsRefreshes"] is False


def test_allowed_hosts_cover_the_default_api_url():
    assert urllib.parse.urlsplit(DEFAULT_API_URL).hostname in DATA["allowedHosts"]["hosts"]


def test_metadata_spec_and_setup_agree_on_license_and_documentation():
    assert SETUP.keywords["license"] == DATA["license"]
    assert SPEC["documentationUrl"] == DATA["documentationUrl"]


# --- Dockerfile, metadata and setup.py agree --------------------------------------------------------


def test_image_labels_match_metadata_and_setup_version():
    labels = DOCKERFILE.pairs("LABEL")

    assert labels["io.airbyte.name"] == DATA["dockerRepository"]
    assert labels["io.airbyte.version"] == DATA["dockerImageTag"] == SETUP.version
    assert SETUP.keywords["version"] == SETUP.version


def test_entrypoints_run_the_console_script_setup_installs():
    env = DOCKERFILE.pairs("ENV")

    assert shlex.split(env["AIRBYTE_ENTRYPOINT"]) == [ENTRYPOINT_NAME]
    assert exec_form(DOCKERFILE.one("ENTRYPOINT")) == [ENTRYPOINT_NAME]
    scripts = SETUP.keywords["entry_points"]["console_scripts"]
    assert [s.split("=")[0].strip() for s in scripts] == [ENTRYPOINT_NAME]
    assert scripts[0].split("=")[1].strip() == "destination_scarf.airbyte.cli:run"


def test_image_runs_as_the_base_images_non_root_user():
    users = DOCKERFILE.all("USER")
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] == BASE_IMAGE_USER
    # The base image already has that user, and useradd/adduser of an existing user fails the build.
    assert DOCKERFILE.one("FROM").startswith(BASE_IMAGE_REPOSITORY + ":")
    creating = [args for args in DOCKERFILE.all("RUN") if re.search(r"\b(useradd|adduser|groupadd|addgroup)\b", args)]
    assert not creating, f"the base image already creates {BASE_IMAGE_USER}: {creating}"
    # The user is switched to after the install, so pip ran as root and the user cannot change the code.
    names = [instruction for instruction, _ in DOCKERFILE.instructions]
    assert names.index("USER") > max(i for i, name in enumerate(names) if name == "RUN")


def test_base_image_is_the_one_metadata_names_pinned_by_digest():
    """Airbyte's metadata validator wants `image:tag@sha256:digest`; the Dockerfile builds on the same."""
    declared = DATA["connectorBuildOptions"]["baseImage"]
    assert re.fullmatch(re.escape(BASE_IMAGE_REPOSITORY) + r":\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", declared), declared
    assert DOCKERFILE.one("FROM") == declared


# --- the image's install, reproduced in a fresh virtualenv ------------------------------------------


@dataclass
class ImageInstall:
    image_root: Path
    workdir: Path
    venv: Path
    context: list[str]
    mounts: list[str]
    pip_commands: list[list[str]]
    env: dict[str, str]
    scratch: Path

    def run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        """Run a venv program from an unrelated directory (so the source tree cannot be imported)."""
        return subprocess.run([str(self.venv / "bin" / args[0]), *args[1:]], input=stdin, capture_output=True,
                              timeout=180, cwd=self.scratch, env=self.env)


def container_path(image_root: Path, workdir: PurePosixPath, target: str) -> Path:
    path = PurePosixPath(target) if target.startswith("/") else workdir / target
    return image_root / str(path).lstrip("/")


def dockerignore_pattern(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex: `*` and `?` stay within a path segment, `**` spans segments."""
    regex = ""
    for part in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
    return re.compile(regex)


def build_context(root: Path) -> list[str]:
    """The files (relative paths) Docker sends as the build context, after .dockerignore.

    As Docker does: the last pattern that matches decides, `!` re-includes, and a pattern that
    matches a directory applies to everything under it.
    """
    rules = []
    ignore = root / ".dockerignore"
    for line in (ignore.read_text().splitlines() if ignore.exists() else []):
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), dockerignore_pattern(line.lstrip("!"))))

    def included(relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        verdict = True
        for negated, pattern in rules:
            if any(pattern.fullmatch(prefix) for prefix in prefixes):
                verdict = negated
        return verdict

    reincluding = any(negated and "*" in pattern.pattern for negated, pattern in rules)
    files = []
    for directory, subdirectories, names in os.walk(root):
        relative_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        # Prune what is excluded and that no `!` pattern could bring back (.git, .venv, ...).
        subdirectories[:] = [d for d in subdirectories if included(prefix + d) or reincluding
                             or any(negated and pattern.pattern.startswith(re.escape(prefix + d) + "/")
                                    for negated, pattern in rules)]
        files += [prefix + name for name in names if included(prefix + name)]
    return sorted(files)


@dataclass
class BindMount:
    source: str  # relative to the build context
    target: str
    writable: bool


def split_run_mounts(args: str) -> tuple[list[BindMount], str]:
    """RUN's leading --mount=type=bind,... flags, and the command after them."""
    mounts = []
    while match := re.match(r"--mount=(\S+)\s+", args):
        options = dict(option.partition("=")[::2] for option in match.group(1).split(","))
        assert options.pop("type", "bind") == "bind", f"only bind mounts are reproduced here: {match.group(1)}"
        source = options.get("source", options.get("src", "."))
        target = options.get("target", options.get("dst", options.get("destination")))
        assert target, f"a mount without a target: {match.group(1)}"
        mounts.append(BindMount(source, target, "rw" in options or options.get("readwrite") == "true"))
        args = args[match.end():]
    return mounts, args


def locate(word: str, mounts: list[tuple[PurePosixPath, Path]]) -> str:
    """A command word that is a path into a mount, pointed at where that mount is laid out here."""
    if word.startswith("/"):
        path = PurePosixPath(word)
        for inside, local in mounts:
            if path == inside or inside in path.parents:
                return str(local / path.relative_to(inside))
    return word


@pytest.fixture(scope="module")
def image_install(tmp_path_factory) -> ImageInstall:
    tmp = tmp_path_factory.mktemp("image")
    image_root, scratch, venv = tmp / "root", tmp / "scratch", tmp / "venv"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update({key: str(container_path(image_root, PurePosixPath("/"), value)) for key, value in BASE_IMAGE_ENV.items()})
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()

    context = build_context(ROOT)
    workdir = PurePosixPath("/")
    mounted: list[str] = []
    pip_commands: list[list[str]] = []
    for instruction, args in DOCKERFILE.instructions:
        if instruction == "WORKDIR":
            workdir = workdir / args
            container_path(image_root, workdir, ".").mkdir(parents=True, exist_ok=True)
        elif instruction in ("COPY", "ADD"):
            raise AssertionError(f"{instruction} {args}: the context reaches the image through RUN's bind mounts")
        elif instruction == "RUN":
            mounts, command = split_run_mounts(args)
            targets = []
            for mount in mounts:
                source = PurePosixPath(mount.source)
                files = [f for f in context if PurePosixPath(f) == source or source in PurePosixPath(f).parents]
                assert files, f"the mount's source {mount.source} is not in the build context"
                target = container_path(image_root, workdir, mount.target)
                for name in files:
                    destination = target / PurePosixPath(name).relative_to(source)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / name, destination)
                targets.append((PurePosixPath(mount.target) if mount.target.startswith("/")
                                else workdir / mount.target, target))
                mounted.append(mount.target)
            for step in command.split("&&"):
                words = shlex.split(step)
                located = [locate(word, targets) for word in words]
                if words[:2] in (["pip", "install"], ["pip3", "install"]):
                    run = [str(venv / "bin" / "python"), "-m", "pip", *located[1:]]
                elif words[:4] in (["python", "-m", "pip", "install"], ["python3", "-m", "pip", "install"]):
                    run = [str(venv / "bin" / "python"), *located[1:]]
                else:
                    continue  # nothing else to reproduce outside Docker
                result = subprocess.run(run, cwd=container_path(image_root, workdir, "."), capture_output=True,
                                        timeout=900, env=env)
                assert result.returncode == 0, (result.stdout + result.stderr).decode()[-4000:]
                pip_commands.append(words)
            for _, local in targets:  # what was written into a mount goes with it
                shutil.rmtree(local) if local.is_dir() else local.unlink()
    assert pip_commands, "the Dockerfile installs nothing with pip"
    return ImageInstall(image_root, container_path(image_root, workdir, "."), venv, context, mounted, pip_commands,
                        env, scratch)


def test_the_build_context_is_only_what_the_install_needs(image_install):
    package_files = [f for f in image_install.context if f.startswith("destination_scarf/")]
    assert sorted(set(image_install.context) - set(package_files)) == ["pyproject.toml", "requirements.lock", "setup.py"]
    assert "destination_scarf/spec.json" in package_files and "destination_scarf/__init__.py" in package_files
    assert not [f for f in image_install.context if "__pycache__" in f or f.endswith(".pyc")]


def test_the_image_installs_the_lock_with_hashes_then_the_package_alone(image_install):
    assert image_install.mounts == ["/tmp/requirements.lock", "/tmp/destination-scarf"]
    assert image_install.pip_commands == [
        ["pip", "install", "--no-cache-dir", "--require-hashes", "-r", "/tmp/requirements.lock"],
        ["pip", "install", "--no-cache-dir", "--no-deps", "--no-build-isolation", "/tmp/destination-scarf"],
    ]


def test_the_image_has_exactly_the_locked_versions(image_install):
    probe = ("import importlib.metadata as m, json\n"
             "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    result = image_install.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    installed = {canonicalize_name(name): version for name, version in json.loads(result.stdout).items()}

    assert installed.pop("destination-scarf") == SETUP.version
    installed.pop("pip")  # the venv's own; in the image, the base image's
    assert installed == {name: package.version for name, package in RUNTIME_LOCK.packages.items()}


def test_the_image_keeps_no_build_leftovers(image_install):
    """No lock, sources, build/ or *.egg-info, no pip cache, and no lock tool in the image.

    Whether pip would fill its cache depends on where it finds each file (this machine serves many
    from a local index, which pip does not cache), so --no-cache-dir is also checked on the commands.
    """
    left = [p.relative_to(image_install.image_root).as_posix() for p in image_install.image_root.rglob("*")
            if not p.is_dir()]
    assert left == []
    assert list(image_install.workdir.iterdir()) == []
    assert not (image_install.venv / "bin" / "uv").exists()
    assert not list((image_install.venv / "bin").glob("pip-compile*"))


def test_the_installed_entrypoint_prints_spec_json(image_install):
    result = image_install.run(ENTRYPOINT_NAME, "spec")

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    messages = messages_of(result.stdout)
    assert [m["type"] for m in messages] == ["SPEC"]
    assert messages[0]["spec"] == SPEC


def test_the_installed_entrypoint_discovers(image_install):
    """discover reads Scarf's OpenAPI spec from the package's resources: they must be installed too."""
    config = image_install.scratch / "config.json"
    config.write_text(json.dumps({"api_token": TOKEN, "owner": OWNER, "api_url": "http://127.0.0.1:9",
                                  "target": {"target_type": "package", "package_id": PACKAGE}}))
    result = image_install.run(ENTRYPOINT_NAME, "discover", "--config", str(config))

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    messages = messages_of(result.stdout)
    assert [m["type"] for m in messages] == ["DESTINATION_CATALOG"]
    assert {op["object_name"] for op in messages[0]["destination_catalog"]["operations"]} == {"package_events"}


def test_the_installed_package_is_only_the_connector(image_install):
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, destination_scarf\n"
        "d = m.distribution('destination-scarf')\n"
        "print(json.dumps({'version': d.version, 'files': [str(f) for f in d.files],\n"
        "  'top_level': (d.read_text('top_level.txt') or '').split(),\n"
        "  'module': destination_scarf.__file__, 'package_version': destination_scarf.__version__,\n"
        f"  'importable': {{name: u.find_spec(name) is not None for name in {list(NOT_SHIPPED)!r}}}}}))\n"
    )
    result = image_install.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    found = json.loads(result.stdout)

    assert found["version"] == found["package_version"] == SETUP.version
    assert found["top_level"] == ["destination_scarf"]
    assert Path(found["module"]).resolve().is_relative_to(image_install.venv.resolve())
    files = [f for f in found["files"] if not f.startswith(("../", "destination_scarf-"))]
    assert files and all(f.startswith("destination_scarf/") for f in files), files
    assert {"destination_scarf/spec.json", "destination_scarf/resources/event-import.openapi.json"} <= set(files)
    for name in NOT_SHIPPED:
        assert not found["importable"][name], f"{name} is importable from the image's Python"
        assert not any(f"/{name}/" in f"/{path}" for path in found["files"]), f"{name} was installed"
    site_packages = next((image_install.venv / "lib").glob("python3*/site-packages"))
    assert not [p.name for p in site_packages.iterdir() if p.name.split("-")[0] in NOT_SHIPPED]
