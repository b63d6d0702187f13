"""docker-compose.yml, the Dockerfile and the README agree with the code and with each other.

No Docker engine runs here, so the images are never built nor started: these tests check what
can be checked without one (see "Running in production" in README.md).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli.main import app
from monitor.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def app_services() -> dict[str, dict[str, Any]]:
    """The services that run our image."""
    return {name: s for name, s in compose()["services"].items() if "build" in s}


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines()
                                               if not line.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def pip_install(line: str) -> tuple[list[str], dict[str, str]]:
    """The requirements a `pip install` line names, and its options that take a value."""
    words = shlex.split(line[line.index("pip install"):])[2:]
    requirements, options = [], {}
    with_value = {"--extra-index-url", "--index-url", "-i", "--constraint", "-c"}
    while words:
        word = words.pop(0)
        if word in with_value:
            options[word] = words.pop(0)
        elif not word.startswith("-"):
            requirements.append(word)
    return requirements, options


def dockerignore() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def image_install_line() -> str:
    return next(line for line in dockerfile() if line.startswith("RUN") and "pip install" in line)


def test_compose_runs_postgres_redis_mailpit_scheduler_and_workers() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "mailpit", "migrate", "scheduler", "worker", "slack"} <= set(services)
    assert set(app_services()) == {"migrate", "scheduler", "worker", "slack"}


@pytest.mark.parametrize("service", ["migrate", "scheduler", "worker", "slack"])
def test_every_service_command_is_a_real_monitor_command(service: str) -> None:
    command = app_services()[service]["command"]
    assert isinstance(command, list) and command[0] == "monitor"
    # --help is eager, but an unknown command or option still fails to parse (exit 2).
    result = CliRunner().invoke(app, [*command[1:], "--help"])
    assert result.exit_code == 0, f"{service}: not a monitor command: {shlex.join(command)}\n{result.output}"


def test_the_command_check_can_fail() -> None:
    assert CliRunner().invoke(app, ["worker", "--no-such-option", "--help"]).exit_code == 2
    assert CliRunner().invoke(app, ["no-such-command", "--help"]).exit_code == 2


def test_the_image_default_command_is_a_real_monitor_command() -> None:
    cmd = next(line for line in dockerfile() if line.startswith("CMD"))
    command = yaml.safe_load(cmd.removeprefix("CMD"))  # the JSON array form
    assert command[0] == "monitor"
    assert CliRunner().invoke(app, [*command[1:], "--help"]).exit_code == 0


def test_workers_can_be_scaled() -> None:
    worker = app_services()["worker"]
    # A fixed name or host port would make `docker compose up --scale worker=4` fail.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][1] == "worker"


def test_app_services_use_postgres_redis_and_the_distributed_engine() -> None:
    for name, service in app_services().items():
        env = service["environment"]
        assert env["MONITOR_ENGINE"] == "celery", name
        assert env["MONITOR_BROKER_URL"].startswith("redis://redis:"), name
        url = env["MONITOR_DATABASE_URL"]
        assert url.startswith("postgresql://monitor:${POSTGRES_PASSWORD") and "@postgres:5432/" in url, name
        assert service["env_file"] == ".env", name
        assert service["depends_on"].get("postgres", service["depends_on"].get("migrate")), name


def test_secrets_come_from_the_env_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{(\w+)", text))
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))
    assert used <= listed, f"not in .env.example: {used - listed}"
    assert {"SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "MONITOR_SMTP_PASSWORD"} <= listed
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in dockerignore()  # not baked into the image either
    assert "POSTGRES_PASSWORD: \"${POSTGRES_PASSWORD" in text  # never a literal password


def test_services_have_healthchecks_and_named_volumes() -> None:
    data = compose()
    services = data["services"]
    for name in ("postgres", "redis", "mailpit", "scheduler"):
        assert services[name]["healthcheck"]["test"], name
    declared = set(data["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in declared, f"{name}: {volume}"
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["scheduler"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_the_compose_config_file_is_valid_and_points_at_the_stack() -> None:
    services = compose()["services"]
    mounts = [v for v in services["scheduler"]["volumes"] if v.startswith("./")]
    source, target = mounts[0].split(":")[:2]
    config_env = next(line for line in dockerfile() if line.startswith("ENV"))
    assert f"MONITOR_CONFIG={target}/feeds.toml" in config_env
    settings = load_settings(ROOT / source / "feeds.toml")
    smtp = settings.file.digest.smtp
    assert smtp is not None and smtp.host == "mailpit" and smtp.port == 1025
    monitor = settings.monitor
    assert monitor.metrics_host == "0.0.0.0" and monitor.metrics_port > 0
    check = " ".join(services["scheduler"]["healthcheck"]["test"])
    assert f"127.0.0.1:{monitor.metrics_port}/healthz" in check
    assert f"127.0.0.1:{monitor.metrics_port}:{monitor.metrics_port}" in services["scheduler"]["ports"]
    web = settings.file.web  # the slack service (monitor serve) takes clicks on the published port
    assert web.host == "0.0.0.0" and services["slack"]["command"] == ["monitor", "serve"]
    assert f"127.0.0.1:{web.port}:{web.port}" in services["slack"]["ports"]
    assert str(web.port) in " ".join(services["slack"]["healthcheck"]["test"])


def test_the_image_installs_what_the_makefile_installs() -> None:
    make_line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line)
    make_requirements, _ = pip_install(make_line)
    image_requirements, options = pip_install(image_install_line())
    torch = [r for r in make_requirements if r.startswith("torch")]
    assert torch == ["torch==2.13.0"]
    assert [r for r in image_requirements if r.startswith("torch")] == torch
    # The project itself, without the dev tools; nothing else pinned behind pyproject's back.
    assert {r.split("[")[0] for r in make_requirements} - {"torch==2.13.0"} == {"."}
    assert set(image_requirements) == {"torch==2.13.0", "."}
    assert options == {"--extra-index-url": TORCH_CPU_INDEX}


def test_the_image_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {line.split()[1] for line in dockerfile() if line.startswith("COPY")}
    assert packages <= copied and {"pyproject.toml"} <= copied
    assert "README.md" in " ".join(line for line in dockerfile() if line.startswith("COPY"))
    assert not dockerignore() & (packages | {"pyproject.toml", "README.md"})


def test_the_readme_documents_the_image_install_step() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = [line for line in readme.splitlines() if "pip install --extra-index-url" in line]
    assert documented, "README shows no image install command"
    assert all(pip_install(line) == pip_install(image_install_line()) for line in documented)
    assert "docker compose up --scale worker=4" in readme or "--scale worker=" in readme
