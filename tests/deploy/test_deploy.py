"""The deployment files: docker/ (image, compose stack, MLflow and PostgreSQL set-up), deploy/k8s/,
deploy/cron/, deploy/systemd/. Nothing is deployed here (no Docker engine, no Kubernetes cluster), so:

- docker/compose.yaml is parsed with PyYAML (anchors and `<<` merge keys resolved as Compose resolves them)
  and validated against the Compose Specification's JSON schema with `jsonschema`, the schema being the
  copy of compose-spec.json that the PyPI package `check-jsonschema` vendors
  (check_jsonschema/builtin_schemas/vendor/compose-spec.json; `pip install check-jsonschema`); where
  that package is missing, that one test is skipped and the structural checks below still run. The file is
  validated both as written (the schema allows `${VAR}` strings) and after interpolation with
  docker/.env.example. `docker compose config -q` runs too where a `docker compose` client exists (it does
  not here: the `docker` CLI has no compose plugin, and it is skipped with that reason).
- the Kubernetes manifests are checked by the small structural checker below (apiVersion/kind/name,
  the CronJob's schedule, time zone, policies and command, the RayCluster's groups, no literal secrets).
  `kubectl create --dry-run=client --validate=false -f` is not used: it still needs API discovery from a
  cluster, and there is none here.
- the cron line by the small validator of the five schedule fields below; the systemd units with
  `systemd-analyze verify` (on copies whose ExecStart is this checkout's .venv/bin/gradstudy and without
  User=) and `systemd-analyze calendar`, and parsed as INI.
- the commands these files run (`gradstudy nightly …` with the overrides the entry points add) are parsed
  by the real `gradstudy` argument parser and composed by the real Hydra config, so a renamed key fails here.
"""
from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import zoneinfo
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from testkit.cron import cron_schedule_errors
from testkit.processes import REPO

DOCKER = REPO / "docker"
K8S = REPO / "deploy" / "k8s"
CRON = REPO / "deploy" / "cron" / "gradstudy-nightly.cron"
SYSTEMD = REPO / "deploy" / "systemd"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PASSWD|(^|_)KEY$|CREDENTIAL", re.I)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^@/\s]+@")
PLACEHOLDERS = {"change-me", ""}


def walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string (and mapping key) in a parsed YAML document, with its dotted path."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}".lstrip("."), str(k)
            yield from walk_strings(v, f"{path}.{k}".lstrip("."))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def gradstudy_argv_ok(argv: list[str]) -> None:
    """`argv` (after the program name) parses with the real `gradstudy` parser and, for the commands
    that take overrides, composes with the real config tree (a renamed key fails here)."""
    from study.cli.main import parse
    from study.config.compose import compose_root

    args = parse(argv)
    if args.command == "nightly":
        composed = compose_root(["experiment=nightly", *args.overrides])
        assert composed.root.study.name == "nightly"


# ====================================================================================================
# docker/compose.yaml

VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
                 r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def compose() -> dict:
    with open(DOCKER / "compose.yaml") as f:
        return yaml.safe_load(f)         # PyYAML resolves anchors and `<<` merge keys


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), line
        values[key] = value
    return values


def variables(text: str) -> Iterator[re.Match]:
    for m in VAR.finditer(text.replace("$$", "")):       # $$ is a literal $ in Compose
        yield m


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation: ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e}, ${V:+r}, ${V+r}, $V, $$."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match) -> str:
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op") or "", m.group("arg") or ""
        value = env.get(name)
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else value is not None) else ""
        return value or ""

    parts = node.split("$$")
    return "$".join(VAR.sub(sub, p) for p in parts)


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def published_ports(service: dict) -> list[str]:
    return [p if isinstance(p, str) else json.dumps(p) for p in service.get("ports") or []]


def test_compose_services(compose):
    assert set(compose["services"]) == {"postgres", "mlflow", "ray-head", "ray-worker", "ray-worker-gpu", "driver"}
    assert set(compose.get("volumes") or {}) >= {"pgdata", "mlflow-artifacts", "driver-data"}
    gradstudy = {n for n, s in compose["services"].items() if str(s.get("image", "")).startswith("gradstudy:")}
    assert gradstudy == {"mlflow", "ray-head", "ray-worker", "ray-worker-gpu", "driver"}
    assert compose["services"]["ray-worker-gpu"]["image"] == "gradstudy:cuda"
    assert compose["services"]["ray-worker-gpu"]["build"]["args"]["TORCH_VARIANT"] == "cuda"
    for name in gradstudy - {"ray-worker-gpu"}:
        assert compose["services"][name]["image"] == "gradstudy:cpu"
        assert compose["services"][name]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    for name in gradstudy:
        build = compose["services"][name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO and (context / build["dockerfile"]).is_file(), build
    # the workers join the head; the head runs no trials itself
    head = compose["services"]["ray-head"]["command"]
    assert "--head" in head and "--num-cpus=0" in head
    for name in ("ray-worker", "ray-worker-gpu"):
        assert "--address=ray-head:6379" in compose["services"][name]["command"]
    assert compose["services"]["ray-worker-gpu"].get("profiles") == ["gpu"]


def test_compose_publishes_only_mlflow_and_the_ray_dashboard_on_loopback(compose, env_example):
    published = {name: published_ports(s) for name, s in compose["services"].items() if s.get("ports")}
    assert set(published) == {"mlflow", "ray-head"}, published
    assert published["mlflow"] == ["${BIND_ADDRESS:-127.0.0.1}:5000:5000"]
    assert published["ray-head"] == ["${BIND_ADDRESS:-127.0.0.1}:8265:8265"]
    # loopback without a docker/.env, and with the example one
    for env in ({}, env_example):
        for name, ports in published.items():
            for port in ports:
                host_ip = interpolate(port, env).rsplit(":", 2)[0]
                assert host_ip == "127.0.0.1", (name, port, env.get("BIND_ADDRESS"))
    assert env_example.get("BIND_ADDRESS") == "127.0.0.1"
    assert not any(s.get("network_mode") == "host" for s in compose["services"].values())


def test_compose_gpu_worker_reserves_an_nvidia_gpu(compose):
    devices = compose["services"]["ray-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert devices[0].get("count", 1) in (1, "all") or int(devices[0]["count"]) >= 1
    for name in set(compose["services"]) - {"ray-worker-gpu"}:
        assert "devices" not in str(compose["services"][name].get("deploy", {}))


def test_compose_variables_are_defaulted_or_in_env_example(compose, env_example):
    used: dict[str, set[str]] = {}
    for path, text in walk_strings(compose):
        for m in variables(text):
            used.setdefault(m.group("braced") or m.group("bare"), set()).add(m.group("op") or "")
    assert used, "no ${VAR} in compose.yaml?"
    for name, ops in used.items():
        defaulted = ops and all(op in (":-", "-") for op in ops)
        assert defaulted or name in env_example, f"${{{name}}} is neither defaulted nor in docker/.env.example"
    # and the example lists nothing that compose does not use
    assert set(env_example) <= set(used), set(env_example) - set(used)
    # every secret the stack needs is required (:?) somewhere, so a missing docker/.env fails loudly
    for name in ("POSTGRES_PASSWORD", "OPTUNA_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "MLFLOW_ADMIN_PASSWORD",
                 "MLFLOW_SECRET_KEY", "RAY_AUTH_TOKEN"):
        assert ":?" in used[name], name
    with pytest.raises(AssertionError, match="required"):
        interpolate(compose, {})


def test_compose_has_no_literal_secret(compose, env_example):
    text = (DOCKER / "compose.yaml").read_text()
    for path, value in walk_strings(compose):
        assert not URL_WITH_PASSWORD.search(value), (path, value)
    for name, service in compose["services"].items():
        for key, value in service_env(service).items():
            if SECRET_NAME.search(key):
                assert isinstance(value, str) and re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}", value), \
                    f"{name}.environment.{key} is a literal: {value!r}"
                assert not re.fullmatch(r"\$\{\w+:?-.*\}", value), f"{name}.{key}: a secret with a default"
    # the example file holds placeholders only
    for key, value in env_example.items():
        if SECRET_NAME.search(key):
            assert value in PLACEHOLDERS, f".env.example {key}={value!r} looks like a real secret"
    assert "change-me" not in text


def test_dot_env_is_ignored_and_the_example_exists():
    assert (DOCKER / ".env.example").is_file()
    patterns = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        hit = False
        for p in patterns:
            negate = p.startswith("!")
            p = p.lstrip("!").rstrip("/")
            anchored = "/" in p.strip("/")
            target = path if anchored else path.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(target, p.lstrip("/")):
                hit = not negate
        return hit

    assert ignored("docker/.env")
    assert not ignored("docker/.env.example") and not ignored("docker/compose.yaml")


def test_compose_mlflow_runs_basic_auth_on_postgresql(compose, monkeypatch):
    mlflow = compose["services"]["mlflow"]
    command = mlflow["command"]
    assert command == ["/opt/gradstudy/docker/mlflow/start.sh"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in mlflow["volumes"]}
    host_dir = DOCKER / mounts["/opt/gradstudy/docker/mlflow"]
    script = host_dir / "start.sh"
    assert script.is_file() and os.access(script, os.X_OK), "start.sh must be executable (it is the command)"
    words = shlex.split(script.read_text().split("exec ", 1)[1].replace("\\\n", " ").splitlines()[0])
    assert words[:3] == ["mlflow", "server", "--app-name"] and words[3] == "basic-auth", words
    backend = words[words.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql") and "@postgres:5432/" in backend, backend
    assert not URL_WITH_PASSWORD.search(backend)
    assert "PGPASSWORD=\"$MLFLOW_DB_PASSWORD\"" in script.read_text()
    assert "--serve-artifacts" in words
    env = service_env(mlflow)
    assert env["MLFLOW_DB_PASSWORD"].startswith("${MLFLOW_DB_PASSWORD")
    assert compose["services"]["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # the auth config it points at, read by MLflow's own reader: admin user, password from the environment
    # MLflow's own reader, mlflow/server/auth/config.py, loaded by path: importing it as a module runs
    # mlflow.server.auth's __init__, which needs the `mlflow[auth]` extra (in the image, not in this venv).
    import importlib.util

    source = Path(importlib.util.find_spec("mlflow").submodule_search_locations[0]) / "server" / "auth" / "config.py"
    spec = importlib.util.spec_from_file_location("mlflow_auth_config", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    read_auth_config = module.read_auth_config

    ini = env["MLFLOW_AUTH_CONFIG_PATH"]
    assert ini.startswith("/opt/gradstudy/docker/mlflow/")
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(host_dir / Path(ini).name))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-environment")
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_USERNAME", raising=False)
    auth = read_auth_config()
    assert auth.admin_username == "admin" and auth.admin_password == "from-the-environment"
    assert auth.database_uri.startswith("sqlite:////mlflow/")          # on the mlflow-artifacts volume
    assert "/mlflow" in mounts and mounts["/mlflow"] == "mlflow-artifacts"
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in env and "MLFLOW_FLASK_SERVER_SECRET_KEY" in env
    # the driver and the workers log in as that user
    driver = service_env(compose["services"]["driver"])
    assert driver["MLFLOW_TRACKING_USERNAME"] == auth.admin_username
    # PostgreSQL: the databases and roles both services use
    init = (DOCKER / "postgres" / "init-databases.sh").read_text()
    assert "CREATE DATABASE optuna OWNER optuna" in init and "CREATE DATABASE mlflow OWNER mlflow" in init


def test_compose_trial_runners_reach_the_optuna_database_and_mlflow(compose):
    """Trials run on the Ray workers, and a trial opens the Optuna storage itself (pruning reports,
    study/cluster/optuna_feed.py) and logs to MLflow (tracking/runs/trial_recorder.py): so the workers, not only the
    driver, need the database password (libpq reads PGPASSWORD) and the MLflow credentials."""
    for name in ("ray-worker", "ray-worker-gpu", "driver"):
        env = service_env(compose["services"][name])
        assert env.get("PGPASSWORD", "").startswith("${OPTUNA_DB_PASSWORD"), (name, env)
        assert env.get("MLFLOW_TRACKING_USERNAME") == "admin", (name, env)
        assert env.get("MLFLOW_TRACKING_PASSWORD", "").startswith("${MLFLOW_ADMIN_PASSWORD"), (name, env)
        assert env.get("RAY_AUTH_TOKEN", "").startswith("${RAY_AUTH_TOKEN"), (name, env)


def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")


def test_compose_volumes_exist_and_are_writable_by_the_image_user(compose):
    """Bind-mounted files exist next to compose.yaml; a named volume mounted into a gradstudy container
    (which runs as the Dockerfile's USER, not root) is a directory the image creates and gives to that user:
    Docker initializes an empty named volume from the image's directory, owner included, and an
    absent directory becomes a root-owned mount point that the user cannot write."""
    text = dockerfile()
    user = re.findall(r"^USER\s+(\S+)", text, re.M)[-1]
    owned = set()
    for m in re.finditer(r"chown\s+(?:-R\s+)?(\S+)\s+([^&;\n]+)", text):
        if m.group(1).split(":")[0] == user:
            owned |= set(m.group(2).split())
    made = set()
    for m in re.finditer(r"mkdir\s+(?:-p\s+)?([^&;\n]+)", text):
        made |= set(m.group(1).split())
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DOCKER / source).exists(), (name, volume)
            elif str(service.get("image", "")).startswith("gradstudy:"):
                assert source in compose["volumes"], (name, volume)
                assert target in made and target in owned, \
                    f"{name}: volume {source} at {target} is not a directory the image makes and chowns to {user}"


def test_dockerfile_torch_variants():
    text = dockerfile()
    pin = re.search(r'"torch==([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    cpu, _, cuda = re.search(r'if \[ "\$TORCH_VARIANT" = "cpu" \]; then(.*?)fi', text, re.S).group(1).partition("else")
    cpu_install = shlex.split(cpu.strip().rstrip(";"))
    assert cpu_install[:2] == ["pip", "install"]
    assert cpu_install[cpu_install.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert f"torch=={pin}+cpu" in cpu_install
    cuda_install = shlex.split(cuda.strip().rstrip(";"))
    assert cuda_install == ["pip", "install", f"torch=={pin}"], cuda_install   # the default index: CUDA wheels
    assert "--index-url" not in cuda and "--extra-index-url" not in text
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    # the rest of the install keeps constraints.txt's pins, less torch's (the variant chose it)
    assert "grep -v '^torch==' constraints.txt" in text and "pip install -c /tmp/constraints.txt ." in text
    assert '"mlflow[auth]"' in text
    assert f"torch=={pin}" in (REPO / "constraints.txt").read_text().splitlines()
    assert re.search(r"^USER\s+(?!root)\S+", text, re.M)


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    try:
        from importlib.resources import files

        path = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
        return json.loads(path.read_text())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        pytest.skip(f"no Compose Specification schema: `pip install check-jsonschema` ships one ({exc})")


def test_compose_validates_against_the_compose_spec_schema(compose, env_example, compose_schema):
    import jsonschema

    cls = jsonschema.validators.validator_for(compose_schema)
    validator = cls(compose_schema, format_checker=cls.FORMAT_CHECKER)
    for doc in (compose, interpolate(compose, env_example)):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    # the schema is strict enough to catch a typo
    broken = json.loads(json.dumps(compose))
    broken["services"]["mlflow"]["portz"] = broken["services"]["mlflow"].pop("ports")
    assert list(validator.iter_errors(broken))


def test_docker_compose_config():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no `docker` client here: `docker compose config` cannot run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr or probe.stdout).strip().splitlines()[0]
        pytest.skip(f"`docker compose` is not available here ({why}); "
                    "compose.yaml is checked against the Compose schema instead")
    done = subprocess.run([docker, "compose", "-f", str(DOCKER / "compose.yaml"), "--env-file",
                           str(DOCKER / ".env.example"), "config", "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_shell_scripts_parse():
    for script in (DOCKER / "driver-entrypoint.sh", DOCKER / "mlflow" / "start.sh",
                   DOCKER / "postgres" / "init-databases.sh"):
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, (script, done.stderr)
        assert os.access(script, os.X_OK), script


@pytest.fixture
def entrypoint(tmp_path, compose):
    """`entrypoint(*args)` → the argv that docker/driver-entrypoint.sh hands to `gradstudy` for
    `docker compose run --rm driver gradstudy ARGS…`, with the driver service's environment (a stand-in
    `gradstudy` prints what it was given)."""
    echo = tmp_path / "gradstudy"
    echo.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    echo.chmod(echo.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in service_env(compose["services"]["driver"]).items() if "$" not in str(v)}

    def run(*args: str) -> list[str]:
        done = subprocess.run(["sh", str(DOCKER / "driver-entrypoint.sh"), str(echo), *args], capture_output=True,
                              text=True, env={"PATH": os.environ["PATH"], **env})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return run


def test_driver_entrypoint_points_the_study_at_the_stack(entrypoint, compose):
    driver = compose["services"]["driver"]
    assert driver["entrypoint"] == ["/opt/gradstudy/docker/driver-entrypoint.sh"]
    assert driver["command"] == ["gradstudy", "nightly"]
    for args in (["nightly"], ["nightly", "--date", "2026-11-21", "train.steps=200"], ["run", "experiment=demo"]):
        argv = entrypoint(*args)
        assert argv[:len(args)] == args
        assert "cluster.address=ray-head:6379" in argv
        assert "study.storage=postgresql://optuna@postgres:5432/optuna" in argv
        assert "tracking.uri=http://mlflow:5000" in argv
        gradstudy_argv_ok(argv)


@pytest.mark.parametrize("args", [["status", "nightly-2026-11-21"], ["status", "nightly-2026-11-21", "--json"],
                                  ["resume", "nightly-2026-11-21"], ["list"], ["report", "nightly-2026-11-21"]])
def test_driver_entrypoint_other_commands_read_the_stack_storage(entrypoint, args):
    """The commands that take no overrides get the stack's storage (and MLflow) as options instead, so
    `docker compose run --rm driver gradstudy status NAME` works."""
    from study.cli.main import parse

    argv = entrypoint(*args)
    ns = parse(argv)              # exits 2 on an argument it does not take
    assert ns.command == args[0] and ns.storage == "postgresql://optuna@postgres:5432/optuna"
    if args[0] == "report":
        assert ns.tracking_uri == "http://mlflow:5000"


# ====================================================================================================
# cron schedules (the validator: tests/testkit/cron.py)

@pytest.mark.parametrize("schedule", ["15 2 * * *", "*/5 * * * *", "0 0-23/2 1,15 jan-jun mon-fri",
                                      "59 23 31 12 7", "0 0 1 * 0", "5,10,15-20/5 * * * *"])
def test_cron_validator_accepts(schedule):
    assert cron_schedule_errors(schedule) == []


@pytest.mark.parametrize("schedule", ["60 2 * * *", "15 24 * * *", "15 2 0 * *", "15 2 * 13 *", "15 2 * * 8",
                                      "15 2 * *", "15 2 * * * *", "*/0 * * * *", "5-1 * * * *", "a * * * *",
                                      "15/5 * * * *", "1,,2 * * * *", "@daily"])
def test_cron_validator_rejects(schedule):
    assert cron_schedule_errors(schedule)


def test_cron_line():
    jobs, env = [], {}
    for line in CRON.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if m:
            env[m.group(1)] = m.group(2)
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        jobs.append((" ".join(fields[:5]), fields[5]))
    assert len(jobs) == 1, jobs
    schedule, command = jobs[0]
    assert cron_schedule_errors(schedule) == [], schedule
    assert schedule == "15 2 * * *"
    assert env.get("CRON_TZ") == "UTC"
    assert "%" not in command, "an unescaped % ends a cron command"
    words = shlex.split(command)
    i = next(i for i, w in enumerate(words) if w.endswith("bin/gradstudy"))
    assert words[i + 1] == "nightly", words
    args = []
    for w in words[i + 1:]:
        if w in (">>", ">", "2>&1", "||", "&&", ";", "|"):
            break
        args.append(w)
    gradstudy_argv_ok(args)
    assert any(w.startswith("GRADSTUDY_HOME=") for w in words[:i])


# ====================================================================================================
# systemd


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=("#", ";"))
    unit.optionxform = str
    unit.read_string(path.read_text())
    return unit


def test_systemd_units_parse():
    service = read_unit(SYSTEMD / "gradstudy-nightly.service")
    timer = read_unit(SYSTEMD / "gradstudy-nightly.timer")
    assert service["Service"]["Type"] == "oneshot"
    exec_start = shlex.split(service["Service"]["ExecStart"])
    assert exec_start[0].endswith("/.venv/bin/gradstudy") and exec_start[1] == "nightly"
    gradstudy_argv_ok(exec_start[1:])
    assert timer["Timer"]["OnCalendar"] == "*-*-* 02:15:00 UTC"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert "Unit" not in timer["Timer"] or timer["Timer"]["Unit"] == "gradstudy-nightly.service"
    # the unit's start timeout outlasts the study's own wall-clock budget (conf/experiment/nightly.yaml)
    budget = yaml.safe_load((REPO / "conf" / "experiment" / "nightly.yaml").read_text())["study"]["timeout_s"]
    timeout = service["Service"]["TimeoutStartSec"]
    seconds = sum(int(n) * {"h": 3600, "min": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)(h|min|s)", timeout))
    assert seconds > budget, (timeout, budget)


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    return tool


def test_systemd_analyze_verify(tmp_path):
    tool = systemd_analyze()
    gradstudy = REPO / ".venv" / "bin" / "gradstudy"
    if not os.access(gradstudy, os.X_OK):
        pytest.skip(f"{gradstudy} is not installed (make setup)")
    text = (SYSTEMD / "gradstudy-nightly.service").read_text()
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={gradstudy}", text, flags=re.M)
    text = re.sub(r"^User=.*\n", "", text, flags=re.M)          # no such user in this container
    text = re.sub(r"^WorkingDirectory=.*$", f"WorkingDirectory={REPO}", text, flags=re.M)
    (tmp_path / "gradstudy-nightly.service").write_text(text)
    shutil.copy(SYSTEMD / "gradstudy-nightly.timer", tmp_path)
    units = [str(tmp_path / "gradstudy-nightly.service"), str(tmp_path / "gradstudy-nightly.timer")]
    done = subprocess.run([tool, "verify", *units], capture_output=True, text=True, timeout=60)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 and not any(u.split("/")[-1] in output for u in units):
        pytest.skip(f"systemd-analyze verify cannot run in this container: {output[:300]}")
    # systemd-analyze exits 0 on a setting it ignores ("Failed to parse …, ignoring"): read the output too
    about_ours = [line for line in output.splitlines() if "gradstudy-nightly" in line or "ignoring" in line]
    assert done.returncode == 0 and not about_ours, output
    # the checker does catch a broken unit here
    (tmp_path / "broken.service").write_text(text.replace("Type=oneshot", "Type=oneshoot"))
    bad = subprocess.run([tool, "verify", str(tmp_path / "broken.service")], capture_output=True, text=True, timeout=60)
    assert "oneshoot" in bad.stdout + bad.stderr


def test_systemd_calendar_is_2_15_utc():
    tool = systemd_analyze()
    spec = read_unit(SYSTEMD / "gradstudy-nightly.timer")["Timer"]["OnCalendar"]
    done = subprocess.run([tool, "calendar", spec], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Normalized form: *-*-* 02:15:00 UTC" in done.stdout, done.stdout


# ====================================================================================================
# Kubernetes

DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def k8s_docs() -> dict[str, dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs[f"{path.name}:{doc.get('kind')}"] = doc
    return docs


def containers_of(pod_spec: dict) -> list[dict]:
    return list(pod_spec.get("initContainers") or []) + list(pod_spec["containers"])


def pod_spec_errors(where: str, spec: dict) -> list[str]:
    errors = []
    containers = containers_of(spec)
    if not containers:
        errors.append(f"{where}: no containers")
    for c in containers:
        if not c.get("name") or not DNS_1123.fullmatch(c["name"]):
            errors.append(f"{where}: container name {c.get('name')!r}")
        if not c.get("image"):
            errors.append(f"{where}/{c.get('name')}: no image")
        for e in c.get("env") or []:
            if SECRET_NAME.search(e["name"]) and "value" in e:
                errors.append(f"{where}/{c['name']}: env {e['name']} has a literal value (use a secretRef)")
        resources = c.get("resources") or {}
        for key, limit in (resources.get("limits") or {}).items():
            if key in (resources.get("requests") or {}) and key.endswith("gpu"):
                if str(resources["requests"][key]) != str(limit):
                    errors.append(f"{where}/{c['name']}: {key} request != limit")
    return errors


def k8s_errors(doc: dict) -> list[str]:
    """A structural check of the manifests this project ships (kubectl's client-side dry run needs a
    cluster's API discovery): the fields each kind needs and the rules of this project."""
    errors = []
    for key in ("apiVersion", "kind", "metadata"):
        if not doc.get(key):
            errors.append(f"missing {key}")
    name = (doc.get("metadata") or {}).get("name", "")
    if not DNS_1123.fullmatch(name or "") or len(name) > 253:
        errors.append(f"metadata.name {name!r} is not a DNS-1123 name")
    kind = doc.get("kind")
    if kind == "CronJob":
        spec = doc["spec"]
        if doc["apiVersion"] != "batch/v1":
            errors.append("CronJob apiVersion is batch/v1")
        errors += cron_schedule_errors(spec.get("schedule", ""))
        try:
            zoneinfo.ZoneInfo(spec.get("timeZone", ""))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors.append(f"timeZone {spec.get('timeZone')!r}")
        if spec.get("concurrencyPolicy") != "Forbid":
            errors.append("concurrencyPolicy is not Forbid")
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        if pod.get("restartPolicy") != "Never":
            errors.append("restartPolicy is not Never")
        errors += pod_spec_errors("CronJob", pod)
    elif kind == "RayCluster":
        spec = doc["spec"]
        if not doc["apiVersion"].startswith("ray.io/"):
            errors.append("RayCluster apiVersion")
        errors += pod_spec_errors("head", spec["headGroupSpec"]["template"]["spec"])
        for group in spec.get("workerGroupSpecs") or []:
            if not (group.get("minReplicas", 0) <= group.get("replicas", 0) <= group.get("maxReplicas", 0)):
                errors.append(f"group {group.get('groupName')}: replicas outside min..max")
            if "rayStartParams" not in group:
                errors.append(f"group {group.get('groupName')}: no rayStartParams")
            errors += pod_spec_errors(group.get("groupName", "?"), group["template"]["spec"])
    elif kind == "Secret":
        for key, value in (doc.get("stringData") or {}).items():
            if SECRET_NAME.search(key) and value not in PLACEHOLDERS:
                errors.append(f"Secret example: {key} holds a value that is not a placeholder")
    return errors


def test_k8s_checker_catches_mistakes():
    doc = k8s_docs()["nightly-cronjob.yaml:CronJob"]
    broken = json.loads(json.dumps(doc))
    broken["spec"]["schedule"] = "15 25 * * *"
    broken["spec"]["concurrencyPolicy"] = "Allow"
    broken["spec"]["timeZone"] = "Mars/Olympus"
    broken["metadata"]["name"] = "Gradstudy_Nightly"
    pod = broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod["restartPolicy"] = "Always"
    pod["containers"][0]["env"].append({"name": "PGPASSWORD", "value": "hunter2"})
    errors = " | ".join(k8s_errors(broken))
    for needle in ("hour", "concurrencyPolicy", "timeZone", "metadata.name", "restartPolicy", "PGPASSWORD"):
        assert needle in errors, (needle, errors)


def test_k8s_manifests_parse_and_are_well_formed():
    docs = k8s_docs()
    assert set(docs) == {"nightly-cronjob.yaml:CronJob", "raycluster.yaml:RayCluster", "secret.example.yaml:Secret"}
    for where, doc in docs.items():
        assert k8s_errors(doc) == [], where
        for path, value in walk_strings(doc):
            assert not URL_WITH_PASSWORD.search(value), (where, path, value)


def test_k8s_cronjob_submits_the_nightly_study():
    docs = k8s_docs()
    cron, cluster = docs["nightly-cronjob.yaml:CronJob"], docs["raycluster.yaml:RayCluster"]
    spec = cron["spec"]
    assert spec["schedule"] == "15 2 * * *" and spec["timeZone"] == "Etc/UTC"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0                  # a regression is not retried into a pass
    budget = yaml.safe_load((REPO / "conf" / "experiment" / "nightly.yaml").read_text())["study"]["timeout_s"]
    assert job["activeDeadlineSeconds"] > budget
    (container,) = job["template"]["spec"]["containers"]
    command = container["command"] + container.get("args", [])
    assert command[:3] == ["ray", "job", "submit"]
    address = command[command.index("--address") + 1]
    assert address == f"http://{cluster['metadata']['name']}-head-svc:8265"     # KubeRay's head service
    head_container = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head_ports = {p["containerPort"] for p in head_container["ports"]}
    assert 8265 in head_ports
    entry = command[command.index("--") + 1:]
    assert entry[:2] == ["gradstudy", "nightly"], entry
    gradstudy_argv_ok(entry[1:])
    # secrets only from the Secret, by reference
    refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    assert refs == [docs["secret.example.yaml:Secret"]["metadata"]["name"]]
    for e in container.get("env") or []:
        assert "value" not in e or not SECRET_NAME.search(e["name"]), e
    # $(JOB_ID) is a variable the container defines (Kubernetes expands $(VAR) in command)
    for var in re.findall(r"\$\((\w+)\)", " ".join(command)):
        assert var in {e["name"] for e in container.get("env") or []}, var


def test_k8s_raycluster_groups():
    docs = k8s_docs()
    cluster, secret = docs["raycluster.yaml:RayCluster"], docs["secret.example.yaml:Secret"]
    spec = cluster["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}

    def resources(group):
        (c,) = group["template"]["spec"]["containers"]
        return c, c["resources"]

    gpu_container, gpu = resources(groups["gpu"])
    assert str(gpu["requests"]["nvidia.com/gpu"]) == "1" and str(gpu["limits"]["nvidia.com/gpu"]) == "1"
    assert gpu_container["image"].endswith(":cuda")
    cpu_container, cpu = resources(groups["cpu"])
    assert "nvidia.com/gpu" not in str(cpu) and cpu_container["image"].endswith(":cpu")
    # every pod that runs trials (they open the Optuna database and MLflow) gets the secret
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    for pod in pods:
        for c in pod["containers"]:
            assert {"secretRef": {"name": secret["metadata"]["name"]}} in c.get("envFrom", []), c["name"]
    assert {"PGPASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
            "RAY_AUTH_TOKEN"} <= set(secret["stringData"])
