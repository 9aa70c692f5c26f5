"""The deployment files, checked without a Docker engine: docker-compose.yml (and the TLS
override), the Dockerfile and .dockerignore, deploy/kneeguard.env.example and the commands and
variables docs/OPERATIONS.md tells operators to use.

Nothing here builds an image or starts a container; it checks that the files fit together and
fit the code: pinned images, health checks behind every `service_healthy`, one-shots behind every
`service_completed_successfully`, declared volumes, mounted files that exist, KNEEGUARD_*
names that are real settings, and `kneeguard` commands that the CLI has.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml

from kneeguard.cli import cli
from kneeguard.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
TLS_OVERRIDE = ROOT / "deploy" / "mosquitto" / "compose.tls.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / "kneeguard.env.example"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"

SETTINGS = {f"KNEEGUARD_{name.upper()}" for name in Settings.model_fields}
LONG_RUNNING = ("postgres", "mosquitto", "mailpit", "kneeguard")
ONE_SHOT = ("migrate", "broker-init")
# Created by the operator before the TLS override is used (docs/OPERATIONS.md, "TLS").
OPERATOR_PROVIDED = {"./deploy/mosquitto/certs"}


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(kind, source, target) of each entry under `volumes`; kind is `bind` or `volume`."""
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
            kind = str(entry.get("type", "volume"))
        else:
            source, target, *_ = str(entry).split(":")
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        yield kind, source, target


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def depends(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on", {})
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: str(spec.get("condition", "service_started")) for name, spec in value.items()}


# --- docker-compose.yml -------------------------------------------------------------------------


def test_the_promised_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(LONG_RUNNING + ONE_SHOT) <= set(services)


def test_every_service_has_a_pinned_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            context = ROOT / (build["context"] if isinstance(build, dict) else build)
            assert context.is_dir(), name
            dockerfile = (
                build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            )
            assert (context / dockerfile).is_file(), name
            continue
        image = str(service.get("image", ""))
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not pinned"
    assert re.fullmatch(r"eclipse-mosquitto:2\.0\.\d+", services["mosquitto"]["image"])
    assert services["broker-init"]["image"] == services["mosquitto"]["image"]
    assert re.fullmatch(r"postgres:\d+(-[a-z]+)?", services["postgres"]["image"])


def test_health_checks_where_promised(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name} has no health check"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_depends_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    assert depends(services["kneeguard"]) == {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
        "mosquitto": "service_healthy",
        "mailpit": "service_healthy",
    }
    assert depends(services["migrate"]) == {"postgres": "service_healthy"}
    assert depends(services["mosquitto"]) == {"broker-init": "service_completed_successfully"}
    for name, service in services.items():
        for target, condition in depends(service).items():
            assert target in services, f"{name} depends on unknown {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no health check"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not a one-shot"


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        assert services[name].get("restart") in ("unless-stopped", "always"), name
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", name


def test_the_service_and_the_migration_run_real_commands(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["kneeguard"]["command"] == ["run"]
    for args in (["db", "upgrade"], ["run"]):
        assert resolve(args) is not None
    assert services["migrate"]["build"] == services["kneeguard"]["build"]


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for service in compose["services"].values()
        for kind, source, _ in mounts(service)
        if kind == "volume" and source
    }
    assert used == declared
    assert {"postgres-data", "mosquitto-data", "broker-auth"} <= declared


@pytest.mark.parametrize("path", [COMPOSE, TLS_OVERRIDE], ids=lambda p: p.name)
def test_every_mounted_file_exists(path: Path) -> None:
    for name, service in load_yaml(path)["services"].items():
        for kind, source, _ in mounts(service):
            if kind == "bind" and source not in OPERATOR_PROVIDED:
                # Paths in an override file are relative to the project directory too.
                assert (ROOT / source).exists(), f"{path.name}: {name} mounts missing {source}"
        for entry in service.get("env_file", []):
            spec = {"path": entry} if isinstance(entry, str) else entry
            env_path = ROOT / spec["path"]
            if spec.get("required", True):
                assert env_path.is_file(), f"{name}: env_file {spec['path']} is missing"
            else:
                assert env_path.with_name(env_path.name + ".example").is_file(), spec["path"]


def test_environment_names_are_settings(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key in env_of(service):
            if key.startswith("KNEEGUARD_"):
                assert key in SETTINGS, f"{name}: {key} is not a KneeGuard setting"
    for name in ("kneeguard", "migrate"):
        env = env_of(services[name])
        assert env["KNEEGUARD_DATABASE_URL"].startswith("postgresql+psycopg://kneeguard:")
        assert env["KNEEGUARD_DATABASE_URL"].endswith("@postgres:5432/kneeguard")
        assert re.fullmatch(r"mqtt://kneeguard:.+@mosquitto:1883", env["KNEEGUARD_MQTT_URL"])
        # Check-ins on a session of their own, under the user init-auth.sh creates.
        assert re.fullmatch(
            r"mqtt://kneeguard-checkin:.+@mosquitto:1883", env["KNEEGUARD_MQTT_CHECKIN_URL"]
        )
        assert env["KNEEGUARD_SMTP_URL"].endswith("smtp://mailpit:1025}")


def test_broker_files_are_on_a_volume_the_broker_reads(services: dict[str, dict[str, Any]]) -> None:
    """`device add` in the kneeguard container writes the very files mosquitto.conf names."""
    conf = dict(
        line.split(" ", 1) for line in MOSQUITTO_CONF.read_text().splitlines() if " " in line
    )
    env = env_of(services["kneeguard"])
    for setting, directive in (
        ("KNEEGUARD_MQTT_PASSWORD_FILE", "password_file"),
        ("KNEEGUARD_MQTT_ACL_FILE", "acl_file"),
    ):
        written = PurePosixPath(env[setting])
        read = PurePosixPath(conf[directive].strip())
        volume = volume_at(services["kneeguard"], written.parent)
        assert volume is not None, f"{setting} is not on a volume"
        assert volume_at(services["mosquitto"], read.parent) == volume
        assert written.name == read.name
    persistence = PurePosixPath(conf["persistence_location"].strip())
    assert volume_at(services["mosquitto"], persistence) == "mosquitto-data"


def volume_at(service: dict[str, Any], directory: PurePosixPath) -> str | None:
    for kind, source, target in mounts(service):
        if kind == "volume" and PurePosixPath(target) == directory:
            return source
    return None


def test_the_tls_listener_lands_in_the_include_dir(services: dict[str, dict[str, Any]]) -> None:
    include = (ROOT / "deploy" / "mosquitto" / "docker.conf").read_text()
    (include_dir,) = re.findall(r"^include_dir (\S+)$", include, re.MULTILINE)
    main = {source: target for _, source, target in mounts(services["mosquitto"])}
    assert main["./deploy/mosquitto/docker.conf"] == "/mosquitto/config/mosquitto.conf"
    assert PurePosixPath(main["./deploy/mosquitto/mosquitto.conf"]).parent == PurePosixPath(
        include_dir
    )
    override = load_yaml(TLS_OVERRIDE)["services"]["mosquitto"]
    tls = {source: target for _, source, target in mounts(override)}
    tls_target = PurePosixPath(tls["./deploy/mosquitto/tls.conf"])
    assert tls_target.parent == PurePosixPath(include_dir)
    assert tls_target.name > PurePosixPath(main["./deploy/mosquitto/mosquitto.conf"]).name
    assert "listener 8883" in (ROOT / "deploy" / "mosquitto" / "tls.conf").read_text()
    assert "include_dir" not in MOSQUITTO_CONF.read_text()


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_uses_a_slim_python_base_and_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
        for keyword, rest in instructions
        if keyword == "FROM"
    ]
    assert bases and all(re.fullmatch(r"python:3\.11-slim(-\w+)?", base) for base in bases)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert ("ENTRYPOINT", '["kneeguard"]') in instructions
    assert ("CMD", '["run"]') in instructions
    for keyword, rest in instructions:
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"PASSWORD|SECRET|TOKEN", rest, re.IGNORECASE), rest
        if keyword == "RUN" and "pip install" in rest:
            assert "[dev]" not in rest


def test_dockerfile_copies_only_what_exists_and_is_in_the_build_context() -> None:
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    ignore = [line for line in ignore if line and not line.startswith("#")]
    assert ignore[0] == "*", ".dockerignore should be an allow-list"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copies = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    sources = [
        source
        for rest in copies
        if "--from=" not in rest
        for source in shlex.split(rest)[:-1]
        if not source.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
        assert PurePosixPath(source).parts[0] in allowed, f"{source} is left out by .dockerignore"
    packages = re.search(r"include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert packages is not None
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert package in sources, f"package {package} is not copied into the image"


# --- settings in the example env file and the operations guide ------------------------------------


def test_env_example_names_every_setting_and_nothing_else() -> None:
    names = set(re.findall(r"^#?(KNEEGUARD_\w+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert names == SETTINGS


def test_operations_guide_has_every_setting_in_its_table() -> None:
    rows = set(re.findall(r"^\| `(KNEEGUARD_\w+)` \|", OPERATIONS.read_text(), re.MULTILINE))
    assert rows == SETTINGS


def resolve(args: list[str]) -> click.Command | None:
    """The command `args` names, after checking its options exist; None for a planned one."""
    command: click.Command = cli
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            raise AssertionError(f"`kneeguard {' '.join([*path, name])}` does not exist")
        command, path = sub, [*path, name]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    options |= {"--help", "-h"}
    for token in rest:
        if token.startswith("--") and token.split("=", 1)[0] not in options:
            raise AssertionError(f"`kneeguard {' '.join(path)}` has no option {token}")
    return command


def documented_invocations(text: str) -> Iterator[list[str]]:
    """Arguments of every `kneeguard` invocation in code blocks and inline code."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    lines = [
        line for block in blocks for line in block.replace("\\\n", " ").splitlines()
    ] + re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    for line in lines:
        line = re.split(r"\s#|[|;<>]", line, maxsplit=1)[0]
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        for i, token in enumerate(tokens):
            if token != "kneeguard":
                continue
            if i == 0 or tokens[i - 1] == "kneeguard":
                args = tokens[i + 1 :]
                if args and args[0] not in ("…", "...") and args[0] != "kneeguard":
                    yield args


def test_operations_guide_uses_only_real_commands() -> None:
    invocations = list(documented_invocations(OPERATIONS.read_text()))
    assert len(invocations) >= 10
    for args in invocations:
        resolve(args)


def test_the_service_keeps_its_host_name_when_recreated(
    services: dict[str, dict[str, Any]],
) -> None:
    """Delivery claims are named by host (kneeguard/app/service.py, `claimer_name`): a container
    recreated with a new random host name would leave its predecessor's claims to go stale."""
    assert services["kneeguard"].get("hostname") == "kneeguard"
