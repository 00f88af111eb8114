"""shoal.containers: what a container task may ask of the engine. The run options' allow-list is checked
against a model of how podman (Go's pflag) reads the arguments it is given: whatever the task's text, the
engine sees only allowed options, each with the value Shoal meant, and no word it would take for an image."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shoal import containers as c

pytestmark = pytest.mark.timeout(120)

#: Options that reach outside the task's container, in the forms a task could write them.
ESCAPING = [
    "--privileged",
    "--privileged=true",
    "--pid host",
    "--pid=host",
    "--ipc host",
    "--ipc=host",
    "--uts host",
    "--uts=host",
    "--userns host",
    "--userns=host",
    "--cgroupns host",
    "--cgroupns=host",
    "--cap-add ALL",
    "--cap-add=SYS_ADMIN",
    "--device /dev/sda",
    "--device=/dev/kvm",
    "--security-opt seccomp=unconfined",
    "--security-opt=apparmor=unconfined",
    "-v /:/host",
    "-v/:/host",
    "-v=/:/host",
    "--volume /:/host",
    "--volume=/etc:/etc",
    "--mount type=bind,src=/,dst=/host",
    "--mount=type=bind,src=/,dst=/host",
    "--user 0",
    "--user=root",
    "-u 0",
    "-u0",
    "-u=0",
    "--name other",
    "--name=other",
    "--env-file /etc/shadow",
    "--env-file=/etc/shadow",
    "--network container:abc",
    "--network=container:abc",
    "--net container:abc",
    "--network ns:/proc/1/ns/net",
    "--network=ns:/proc/1/ns/net",
    "--network slirp4netns",
    "--pod other",
    "--volumes-from other",
    "--group-add 0",
    "--rootfs /",
    "--cgroup-parent /",
    "--oom-score-adj=-1000",
    "--annotation run.oci.keep_original_groups=1",
    "-it",
    "-P",
    "--rm",
    "--help",
]

#: Safe options in every form, and the arguments the engine gets for each.
SAFE = [
    ("-e FOO=bar", ("-e", "FOO=bar")),
    ("-eFOO=bar", ("-e", "FOO=bar")),
    ("--env FOO=bar", ("--env", "FOO=bar")),
    ("--env=FOO=bar", ("--env", "FOO=bar")),
    ("-e 'A=with space'", ("-e", "A=with space")),
    ("-w /work", ("-w", "/work")),
    ("-w/work", ("-w", "/work")),
    ("--workdir=/work", ("--workdir", "/work")),
    ("--entrypoint /bin/sh", ("--entrypoint", "/bin/sh")),
    ("--entrypoint=", ("--entrypoint", "")),
    ("-m 512m", ("-m", "512m")),
    ("-m512m", ("-m", "512m")),
    ("--memory=1g", ("--memory", "1g")),
    ("--memory-reservation 256m", ("--memory-reservation", "256m")),
    ("--memory-swap=-1", ("--memory-swap", "-1")),
    ("--cpus 1.5", ("--cpus", "1.5")),
    ("-c 512", ("-c", "512")),
    ("--cpu-shares=512", ("--cpu-shares", "512")),
    ("--cpuset-cpus 0-1", ("--cpuset-cpus", "0-1")),
    ("--shm-size=64m", ("--shm-size", "64m")),
    ("-h box", ("-h", "box")),
    ("--hostname=box", ("--hostname", "box")),
    ("-l a=b", ("-l", "a=b")),
    ("--label=a=b", ("--label", "a=b")),
    ("--tmpfs /scratch", ("--tmpfs", "/scratch")),
    ("--ulimit nofile=1024:1024", ("--ulimit", "nofile=1024:1024")),
    ("--pids-limit 100", ("--pids-limit", "100")),
    ("--pids-limit -1", ("--pids-limit", "-1")),
    ("--stop-signal SIGINT", ("--stop-signal", "SIGINT")),
    ("--stop-timeout=5", ("--stop-timeout", "5")),
    ("--tz UTC", ("--tz", "UTC")),
    ("--add-host db:127.0.0.1", ("--add-host", "db:127.0.0.1")),
    ("--dns 127.0.0.1", ("--dns", "127.0.0.1")),
    ("--dns-search example.test", ("--dns-search", "example.test")),
    ("--umask 0077", ("--umask", "0077")),
    ("--read-only", ("--read-only",)),
    ("--init", ("--init",)),
    ("--no-hosts", ("--no-hosts",)),
    ("--network none", ("--network", "none")),
    ("--network=bridge", ("--network", "bridge")),
    ("--net private", ("--net", "private")),
    ("--net=host", ("--net", "host")),
    ("", ()),
    ("  ", ()),
]

#: Option names (long, or shorthand letters) that take a value in podman create, for the model below.
#: Unknown names are taken as flags: a model that errs there only makes the check below stricter.
_PODMAN_VALUE_OPTIONS = c._SAFE_WITH_VALUE | {
    "--network",
    "--net",
    "-v",
    "--volume",
    "--mount",
    "-u",
    "--user",
    "--name",
    "--pid",
    "--ipc",
    "--uts",
    "--userns",
    "--cgroupns",
    "--cap-add",
    "--device",
    "--security-opt",
    "--env-file",
    "-p",
    "--publish",
    "--pod",
    "--volumes-from",
    "--group-add",
}
_PODMAN_SHORTHANDS = {o[1] for o in _PODMAN_VALUE_OPTIONS if len(o) == 2}


def pflag_reading(args: tuple[str, ...]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """How podman's flag parser reads ``args`` (before the image): the options with their values, and the
    words it would take as positional (the first would be the image)."""
    options: list[tuple[str, str | None]] = []
    positional: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            positional += args[i:]
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if name in _PODMAN_VALUE_OPTIONS and not eq:
                # pflag takes the next word as the value, whatever it looks like.
                value = args[i] if i < len(args) else ""
                i += 1
            options.append((name, value if (eq or name in _PODMAN_VALUE_OPTIONS) else None))
        elif word.startswith("-") and len(word) > 1:
            letters = word[1:]
            for j, letter in enumerate(letters):
                if letter in _PODMAN_SHORTHANDS:
                    rest = letters[j + 1 :]
                    if rest:
                        options.append(("-" + letter, rest.removeprefix("=")))
                    else:
                        options.append(("-" + letter, args[i] if i < len(args) else ""))
                        i += 1
                    break
                options.append(("-" + letter, None))
        else:
            positional.append(word)
    return options, positional


def assert_only_allowed(args: tuple[str, ...]) -> None:
    options, positional = pflag_reading(args)
    assert positional == [], f"podman would take {positional[0]!r} for the image: {args}"
    for name, value in options:
        if name in ("--network", "--net"):
            assert value in c._SAFE_NETWORKS, args
        elif value is None:
            assert name in c._SAFE_FLAGS, args
        else:
            assert name in c._SAFE_WITH_VALUE, args


@pytest.mark.parametrize(
    "args",
    [
        ("-v", "/:/h"),
        ("-ev", "/:/h"),
        ("-ue", "A"),
        ("--privileged",),
        ("-e", "A", "busybox"),
        ("--net", "container:x"),
    ],
)
def test_the_model_of_the_engine_sees_escapes(args: tuple[str, ...]) -> None:
    # The property tests below are only as good as this model: it must catch what the engine would obey.
    with pytest.raises(AssertionError):
        assert_only_allowed(args)
    assert_only_allowed(("-e", "-v", "-ev", "--network", "none", "--read-only"))


@pytest.mark.parametrize("text", ESCAPING)
def test_options_that_escape_the_container_are_refused(text: str) -> None:
    parsed = c.parse_run_options(text, allow_host=False)
    assert parsed.problem and parsed.args == ()
    assert "allow_host_run_options" in parsed.problem or "networks are allowed" in parsed.problem


@pytest.mark.parametrize("text", ESCAPING)
def test_escaping_options_are_refused_after_safe_ones_too(text: str) -> None:
    parsed = c.parse_run_options(f"-e A=1 --read-only {text} --memory 1g", allow_host=False)
    assert parsed.problem and parsed.args == ()


@pytest.mark.parametrize("text", ESCAPING)
def test_a_pool_that_allows_host_options_passes_them_on_as_given(text: str) -> None:
    parsed = c.parse_run_options(f"-e A=1 {text}", allow_host=True)
    assert parsed.problem == ""
    # The engine reads the same options and values (`--opt=value` may come as `--opt value`).
    assert pflag_reading(parsed.args) == pflag_reading(("-e", "A=1", *shlex.split(text)))


@pytest.mark.parametrize(("text", "args"), SAFE)
def test_safe_options_pass_with_their_values(text: str, args: tuple[str, ...]) -> None:
    for allow_host in (False, True):
        parsed = c.parse_run_options(text, allow_host=allow_host)
        assert parsed.problem == "" and parsed.args == args


def test_safe_options_together_keep_their_order() -> None:
    parsed = c.parse_run_options("-eA=1 --env B=2 --read-only -w /x --network none -m 1g", allow_host=False)
    assert parsed.args == ("-e", "A=1", "--env", "B=2", "--read-only", "-w", "/x", "--network", "none", "-m", "1g")


@pytest.mark.parametrize(
    ("text", "sets_workdir"),
    [("-w /x", True), ("-w/x", True), ("--workdir /x", True), ("--workdir=/x", True), ("-e A=1 --init", False)],
)
def test_sets_workdir(text: str, sets_workdir: bool) -> None:
    assert c.parse_run_options(text, allow_host=False).sets_workdir is sets_workdir


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("image", "'image' is not an option"),
        ("-e A=1 busybox", "'busybox' is not an option"),
        ("--read-only true", "'true' is not an option"),
        ("-", "'-' is not an option"),
        ("-- sh", "'--' is not an option"),
        ("-e", "-e needs a value"),
        ("--env", "--env needs a value"),
        ("--network", "--network needs a value"),
        ("-e 'A=1", "cannot be split into words"),
        ("--read-only=false", "--read-only is not allowed"),
        ("--init=true", "--init is not allowed"),
        ("--network HOST", "only none, bridge, private or host networks are allowed"),
    ],
)
def test_what_is_not_an_allowed_option_is_said(text: str, words: str) -> None:
    parsed = c.parse_run_options(text, allow_host=False)
    assert words in parsed.problem and parsed.args == ()


def test_run_options_have_a_length_limit() -> None:
    long = "-e A=" + "x" * c.MAX_RUN_OPTIONS
    assert "at most" in c.parse_run_options(long, allow_host=True).problem
    assert c.parse_run_options("-e A=" + "x" * (c.MAX_RUN_OPTIONS - 5), allow_host=False).problem == ""


def test_a_value_that_looks_like_an_option_stays_a_value() -> None:
    # The engine takes the word after -e as its value, whatever it is: no option hides in it.
    parsed = c.parse_run_options("-e --privileged=1 --env -v=2", allow_host=False)
    assert parsed.args == ("-e", "--privileged=1", "--env", "-v=2")
    assert_only_allowed(parsed.args)


# Words a task might write: escaping and safe options, their pieces, values and other words.
_WORDS = st.sampled_from(
    sorted(
        {w for text in ESCAPING for w in shlex.split(text)}
        | {w for text, _ in SAFE for w in shlex.split(text)}
        | {"-e", "-w", "-m", "-h", "-l", "-c", "-v", "-u", "-ev", "-ve", "-it", "-e=A", "-u=0", "-v=/:/h"}
        | {"--network", "--net", "host", "none", "container:x", "=", "-", "--", "busybox", "/bin/sh", "A=1"}
    )
)
_TEXTS = st.one_of(
    st.lists(st.one_of(_WORDS, st.text(max_size=8)), max_size=8).map(shlex.join),
    st.lists(_WORDS, max_size=8).map(" ".join),
    st.text(max_size=40),
)


@settings(max_examples=600, deadline=None)
@given(_TEXTS)
@example("-e -v /:/h")
@example("-ev /:/h")
@example("-ve FOO")
@example("--env=--privileged")
def test_whatever_the_text_the_engine_sees_only_allowed_options(text: str) -> None:
    parsed = c.parse_run_options(text, allow_host=False)
    if parsed.problem:
        assert parsed.args == ()
        return
    assert_only_allowed(parsed.args)
    # Its own output reads the same again: the arguments are whole option-value pairs.
    assert c.parse_run_options(shlex.join(parsed.args), allow_host=False) == parsed


@settings(max_examples=300, deadline=None)
@given(_TEXTS)
def test_allowing_host_options_only_ever_allows_more(text: str) -> None:
    strict = c.parse_run_options(text, allow_host=False)
    lenient = c.parse_run_options(text, allow_host=True)
    if not strict.problem:
        assert lenient == strict
    if lenient.problem:
        assert strict.problem


# --- image names, registry servers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "busybox",
        "busybox:1.36",
        "library/busybox",
        "docker.io/library/busybox:latest",
        "127.0.0.1:5000/team/app:v1.2-rc_3",
        "localhost/shoal-test-busybox:kit-0123",
        "registry.example.test/app@sha256:" + "a" * 64,
        "x" * c.MAX_IMAGE_NAME,
    ],
)
def test_image_names_that_pass(name: str) -> None:
    assert c.image_name_problem(name) == ""


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "must name an image"),
        ("x" * (c.MAX_IMAGE_NAME + 1), "at most"),
        ("-v", "image reference"),
        ("--privileged", "image reference"),
        ("/busybox", "image reference"),
        ("busy box", "image reference"),
        ("busybox;rm", "image reference"),
        ("$(id)", "image reference"),
        ("a\\b", "image reference"),
    ],
)
def test_image_names_that_do_not(name: str, words: str) -> None:
    assert words in c.image_name_problem(name)


def test_a_final_newline_is_no_part_of_a_name() -> None:
    assert c.image_name_problem("busybox\n") != ""
    assert c.registry_server_problem("127.0.0.1:5000\n") != ""


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_an_accepted_image_name_is_one_word_and_no_option(name: str) -> None:
    if c.image_name_problem(name) == "":
        assert shlex.split(name) == [name]
        assert not name.startswith("-") and name.strip() == name


@pytest.mark.parametrize(
    "server", ["", "127.0.0.1", "127.0.0.1:5000", "localhost:5000", "registry.example.test", "a", "a-b.c:1"]
)
def test_registry_servers_that_pass(server: str) -> None:
    assert c.registry_server_problem(server) == ""


@pytest.mark.parametrize(
    "server",
    [
        "https://registry.example.test",
        "registry.example.test/path",
        "host:port",
        "host:",
        "host:123456",
        "-host",
        "host-",
        ".host",
        "host name",
        "[::1]:5000",
        "user@host",
    ],
)
def test_registry_servers_that_do_not(server: str) -> None:
    assert "host[:port]" in c.registry_server_problem(server)


@pytest.mark.parametrize("server", ["host:0", "host:65536", "host:99999"])
def test_a_registry_port_is_a_port(server: str) -> None:
    assert c.registry_server_problem(server) != ""


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("busybox", ""),
        ("busybox:1", ""),
        ("library/busybox", ""),
        ("team/app:v1", ""),
        ("docker.io/library/busybox", "docker.io"),
        ("127.0.0.1:5000/app:1", "127.0.0.1:5000"),
        ("localhost/app", "localhost"),
        ("localhost:5000/a/b/c", "localhost:5000"),
        ("registry.example.test/app@sha256:" + "a" * 64, "registry.example.test"),
        ("host:5000/app", "host:5000"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert c.registry_of(image) == registry


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z0-9][a-z0-9._/:@+-]{0,40}", fullmatch=True))
def test_the_registry_of_an_image_is_its_first_component(image: str) -> None:
    server = c.registry_of(image)
    assert server == "" or image.startswith(server + "/")


@pytest.mark.parametrize(
    "text",
    ["-e NAME", "--env NAME", "-e 'PREFIX*'", "--env-host", "--label shoal.node=x", "-l shoal.job=j", "-e A=\x00"],
)
def test_what_reads_the_node_or_hides_from_the_agent_is_refused(text: str) -> None:
    # (`-e NAME` copies the engine's own variables, the node's; shoal.* labels are how the agent finds its containers.)
    assert c.parse_run_options(text, allow_host=False).problem
