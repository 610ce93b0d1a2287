"""Packaging (issue 13): the Dockerfile, .dockerignore and docker-compose.yml
against what docs/operations.md ("Deployment") promises.

No Docker engine runs here, so nothing is built or started: compose's own
`docker-compose config` (Debian 12's 1.29.2, scripts/packages' test group)
reads the file on every profile, and its output is checked service by
service; the Dockerfile is read as text and must install only through
scripts/lib.sh, from groups of scripts/packages, the one package list. The
build context is computed with the matcher compose builds with, and the
libraries a built explorer links, when one exists, are checked against the
runtime group. Needs neither the fake exchange nor a running service.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, SOURCE

COMPOSE_FILE = os.path.join(SOURCE, "docker-compose.yml")
DOCKERFILE = os.path.join(SOURCE, "Dockerfile")
PACKAGES = os.path.join(SOURCE, "scripts", "packages")
OPERATIONS = os.path.join(SOURCE, "docs", "operations.md")

# What docs/operations.md's compose table promises: service -> (profile,
# ROLE, published host port -> container port, ./operators mounted).
NODES = {
    "explorer": (None, "all", (8080, 8080), True),
    "scraper": ("scale", "scraper", (8083, 8080), True),
    "api1": ("scale", "api", (8081, 8080), False),
    "api2": ("scale", "api", (8082, 8080), False),
}
REDIS_URL = "redis://redis:6379/0"
# Variables compose itself reads, or the file interpolates: a developer's
# shell must not change what the test sees.
COMPOSE_ENV = ("API_AUTHENTICATION_TOKEN", "PORT", "COMPOSE_PROFILES", "COMPOSE_FILE",
               "COMPOSE_PROJECT_NAME", "COMPOSE_PATH_SEPARATOR")


def compose_bin():
    path = shutil.which("docker-compose")
    if path is None:
        pytest.skip("docker-compose is not installed (scripts/packages: test docker-compose)")
    return path


def compose(tmp_path, *args, env=None):
    """Runs `docker-compose --env-file <empty> -f docker-compose.yml ARGS`
    with only the given variables of COMPOSE_ENV set; returns stdout."""
    dc = compose_bin()
    empty = tmp_path / "empty.env"
    empty.write_text("")
    run_env = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    run_env.update(env or {})
    r = subprocess.run([dc, "--env-file", str(empty), "-f", COMPOSE_FILE, *args], cwd=SOURCE,
                       env=run_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"docker-compose {' '.join(args)}: rc {r.returncode}\n{r.stderr}"
    return r.stdout


def compose_config(tmp_path, profile=None, env=None):
    import yaml
    args = (["--profile", profile] if profile else []) + ["config"]
    return yaml.safe_load(compose(tmp_path, *args, env=env))


def active(config, profile):
    """Services `up` starts with this profile (None: no profile): those
    without `profiles`, and those listing it (compose's rule; 1.29.2's
    `config` prints every service whatever the profile)."""
    return {name for name, svc in config["services"].items()
            if not svc.get("profiles") or profile in svc["profiles"]}


def package_groups():
    groups = {}
    with open(PACKAGES, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            assert len(fields) == 2, f"scripts/packages: not '<group> <package>': {line!r}"
            groups.setdefault(fields[0], []).append(fields[1])
    return groups


def dockerfile_stages():
    """The Dockerfile as [(from_line, [(INSTRUCTION, argument), ...])], with
    continuation lines joined and comments dropped."""
    with open(DOCKERFILE, encoding="utf-8") as f:
        text = f.read()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        word, _, arg = line.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append((arg.strip(), []))
        else:
            assert stages, f"Dockerfile: {word} before FROM"
            stages[-1][1].append((word, " ".join(arg.split())))
    return stages


def instructions(stage, word):
    return [arg for w, arg in stage[1] if w == word]


# ---- docker-compose.yml ---------------------------------------------------------


def test_every_profile_is_accepted(tmp_path):
    profiles = compose(tmp_path, "config", "--profiles").split()
    assert profiles == ["scale"], profiles
    for profile in [None] + profiles:
        args = (["--profile", profile] if profile else []) + ["config", "-q"]
        compose(tmp_path, *args)


def test_profiles_start_what_the_docs_say(tmp_path):
    config = compose_config(tmp_path)
    assert set(config["services"]) == {"redis"} | set(NODES)
    assert active(config, None) == {"redis", "explorer"}
    assert active(compose_config(tmp_path, "scale"), "scale") == {"redis"} | set(NODES)
    for name, (profile, *_rest) in NODES.items():
        assert config["services"][name].get("profiles") == ([profile] if profile else None), name


def test_redis_has_a_volume_and_a_healthcheck(tmp_path):
    config = compose_config(tmp_path)
    redis = config["services"]["redis"]
    assert redis["image"] == "redis:7"
    assert "redis-data:/data:rw" in redis["volumes"], redis["volumes"]
    assert "redis-data" in config["volumes"]
    test = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli ping" in test and "PONG" in test, test
    assert "ports" not in redis, "Redis is reached on the compose network only"


def test_nodes_by_default(tmp_path):
    """Without PORT or a token in the environment: port 8080, and an empty
    token (explorer reads an empty variable as unset and generates one)."""
    services = compose_config(tmp_path)["services"]
    images = set()
    for name, (_profile, role, (published, target), operators) in NODES.items():
        svc = services[name]
        env = svc["environment"]
        assert env["ROLE"] == role, name
        assert env["REDIS_URL"] == REDIS_URL, name
        assert env["API_AUTHENTICATION_TOKEN"] == "", name
        assert env["LOG_FORMAT"] == "json", name
        assert svc["ports"] == [{"published": published, "target": target}], name
        assert svc["build"]["context"] == SOURCE, name
        assert svc["depends_on"] == {"redis": {"condition": "service_healthy"}}, name
        assert svc["restart"] == "unless-stopped", name
        mounts = svc.get("volumes", [])
        want = f"{SOURCE}/operators:/app/operators:ro"
        assert (want in mounts) == operators, (name, mounts)
        # node_id is <hostname>-<pid> and the pid is 1 in every container:
        # a fixed host name would give every replica the same id.
        assert "hostname" not in svc and "container_name" not in svc, name
        images.add(svc["image"])
    assert len(images) == 1, f"one image for every role, built once: {images}"
    assert services["explorer"]["environment"]["PORT"] == "8080"


def test_nodes_take_port_and_tokens_from_the_environment(tmp_path):
    env = {"PORT": "9090", "API_AUTHENTICATION_TOKEN": "tok-a,tok-b"}
    services = compose_config(tmp_path, "scale", env=env)["services"]
    explorer = services["explorer"]
    assert explorer["environment"]["PORT"] == "9090"
    assert explorer["ports"] == [{"published": 9090, "target": 9090}]
    for name in NODES:
        assert services[name]["environment"]["API_AUTHENTICATION_TOKEN"] == "tok-a,tok-b", name
    for name in ("scraper", "api1", "api2"):
        assert "PORT" not in services[name]["environment"], name
        assert services[name]["ports"] == [{"published": NODES[name][2][0], "target": 8080}]


def test_docs_table_matches_the_compose_file():
    with open(OPERATIONS, encoding="utf-8") as f:
        doc = f.read()
    for name, (profile, role, (published, _target), operators) in NODES.items():
        row = re.search(rf"^\| `{name}` \|(.*)$", doc, re.M)
        assert row, f"docs/operations.md: no compose table row for {name}"
        cells = [c.strip() for c in row.group(1).split("|")]
        assert cells[0] == (f"`{profile}`" if profile else ""), (name, cells)
        assert cells[1] == f"`{role}`", (name, cells)
        assert str(published) in cells[2], (name, cells)
        assert cells[3] == ("yes" if operators else "no"), (name, cells)


# ---- Dockerfile -----------------------------------------------------------------


def test_dockerfile_installs_only_through_scripts():
    stages = dockerfile_stages()
    groups = package_groups()
    assert [s[0] for s in stages] == ["debian:12 AS build", "debian:12"], [s[0] for s in stages]
    wanted = [["build", "runtime"], ["runtime"]]
    for stage, want in zip(stages, wanted):
        runs = instructions(stage, "RUN")
        for run in runs:
            assert not re.search(r"\b(apt-get|apt|aptitude)\s+(-\S+\s+)*install\b|\bdpkg\s+-i\b",
                                 run), f"{stage[0]}: installs packages by name: {run}"
        installs = [m.group(1).split() for run in runs
                    for m in re.finditer(r"rx_install\s+([a-z ]+?)\s*(?:'|&&|;|$)", run)]
        assert installs == [want], f"{stage[0]}: rx_install {installs}, expected {want}"
        assert all(g in groups for g in want), (want, sorted(groups))
        # lib.sh and the list are copied before the install that reads them.
        order = [w for w, _a in stage[1]]
        copies = [a for w, a in stage[1] if w == "COPY"]
        first_install = next(i for i, (w, a) in enumerate(stage[1])
                             if w == "RUN" and "rx_install" in a)
        first_copy = order.index("COPY")
        assert first_copy < first_install
        assert "scripts/lib.sh" in copies[0] and "scripts/packages" in copies[0], copies[0]


def test_runtime_group_has_what_the_image_needs():
    runtime = package_groups()["runtime"]
    for pkg in ("libwebsockets-evlib-uv", "ca-certificates", "curl"):
        assert pkg in runtime, f"scripts/packages: runtime lacks {pkg}"
    assert "cmake" in package_groups()["build"]


def test_dockerfile_runs_a_healthy_unprivileged_explorer():
    final = dockerfile_stages()[-1]
    words = [w for w, _a in final[1]]
    users = instructions(final, "USER")
    assert users and users[-1] not in ("root", "0"), users
    assert words.index("USER") < words.index("CMD")
    assert instructions(final, "STOPSIGNAL") == ["SIGTERM"]
    assert instructions(final, "EXPOSE") == ["8080"]
    assert instructions(final, "WORKDIR") == ["/app"]
    assert "EXPLORER_CONFIG=/app/config/explorer.lua" in instructions(final, "ENV")
    # Exec form: explorer is PID 1 and receives SIGTERM itself.
    assert instructions(final, "CMD") == ['["explorer"]']
    checks = instructions(final, "HEALTHCHECK")
    assert len(checks) == 1, checks
    probe = checks[0]
    assert "CMD curl" in probe and "/healthz" in probe and "${PORT:-8080}" in probe, probe
    assert "--noproxy" in probe, probe
    # The generated token is written beside the config.
    assert any(re.search(r"chown \S*explorer\S* /app/config", r)
               for r in instructions(final, "RUN")), instructions(final, "RUN")
    assert instructions(final, "VOLUME") == [], "mount points are documented, not VOLUMEs"


def test_build_context_keeps_secrets_and_host_builds_out(tmp_path):
    """The context as compose sends it: docker-py's walk with .dockerignore
    over a tree holding what a working copy may hold."""
    compose_bin()
    from docker.utils.build import exclude_paths
    with open(os.path.join(SOURCE, ".dockerignore"), encoding="utf-8") as f:
        patterns = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    left_out = ("config/explorer.token", "explorer.token", ".env", ".git/HEAD",
                "build/CMakeCache.txt", "build-asan/CMakeCache.txt", ".tools/x",
                "tests/integration/__pycache__/x.pyc", "node_modules/x/package.json",
                "tests/artifacts/x.log")
    needed = ("CMakeLists.txt", "Dockerfile", "scripts/lib.sh", "scripts/packages",
              "config/explorer.lua", "operators/kraken.lua", "operators/lib/x.lua",
              "engine/main.c", "tests/CMakeLists.txt")
    for path in left_out + needed:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    sent = exclude_paths(str(tmp_path), patterns, dockerfile="Dockerfile")
    for path in left_out:
        assert path not in sent, f"{path} would be sent to the build"
    for path in needed:
        assert path in sent, f"{path} is needed by the build and left out"


def test_runtime_group_covers_the_libraries_explorer_links():
    """Every library a built explorer links directly comes from a runtime
    package (or one they depend on, or libc6, which the base image has).
    Prefers the Release build, the one the image makes."""
    binary = next((p for p in (os.path.join(SOURCE, "build", "engine", "explorer"),
                               os.path.join(BUILD, "engine", "explorer")) if os.access(p, os.X_OK)),
                  None)
    if binary is None or not shutil.which("readelf") or not shutil.which("dpkg"):
        pytest.skip("no built explorer (or no readelf/dpkg) to read the libraries of")
    runtime = package_groups()["runtime"]
    allowed = set(runtime) | {"libc6"}
    deps = subprocess.run(["dpkg-query", "-W", "-f=${Depends}\n", *runtime],
                          capture_output=True, text=True).stdout
    allowed |= {re.split(r"[\s(:]", d.strip())[0] for d in re.split(r"[,|]", deps) if d.strip()}
    dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                             check=True).stdout
    for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic):
        if re.match(r"lib(asan|ubsan)\.", lib):
            continue  # the sanitizer build's own runtime, never in the image
        owners = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True).stdout
        pkgs = {line.split(":")[0] for line in owners.splitlines() if ":" in line}
        assert pkgs & allowed, f"{binary} links {lib} ({sorted(pkgs)}): not in the runtime group"
