"""The settings tree: defaults, the TOML file, the environment, and every refusal naming key and file."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import LLMEndpoint, Runtime
from orchestrator.errors import ConfigError, InvalidInputError
from orchestrator.run_cli import with_flags
from orchestrator.server.tenants import Tenant, TenantQuotas
from orchestrator.settings import ENVIRONMENT, Settings, file_key, load_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
EXAMPLE = DOCS / "config.example.toml"
HOME = {"HOME": "/home/tester"}


def _file(tmp_path: Path, text: str, name: str = "rlm.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _refusal(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or {})
    assert str(path) in caught.value.message, caught.value.message
    return caught.value.message


def test_no_file_gives_the_builtin_defaults() -> None:
    """With no path and no RLM_CONFIG the tree is the dataclasses' defaults, with one "default" endpoint."""
    settings = load_settings(None, HOME)
    assert settings == dataclasses.replace(
        Settings(), storage=dataclasses.replace(Settings().storage, data_dir="/home/tester/.local/share/rlm")
    )
    assert [e.name for e in settings.endpoints] == ["default"]


def test_example_file_equals_the_builtin_defaults() -> None:
    """docs/config.example.toml sets every key to its default, so loading it changes nothing."""
    assert load_settings(EXAMPLE, HOME) == load_settings(None, HOME)


def _undocumented(cls: type, table: dict[str, Any], prefix: str, comments: str) -> list[str]:
    missing = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = file_key(cls, f.name)
        if key is None:  # not a key of the file (an endpoint's name, its api key): said in a comment
            if not re.search(rf"\b{f.name}\b", comments):
                missing.append(prefix + f.name)
            continue
        if key not in table:
            missing.append(prefix + key)
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            missing += _undocumented(hint, table[key], f"{prefix}{key}.", comments)
        elif typing.get_origin(hint) is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            for name, sub in table[key].items():
                missing += _undocumented(typing.get_args(hint)[0], sub, f"{prefix}{key}.{name}.", comments)
    return missing


def _commented_tenant(text: str) -> str:
    """The example's commented-out tenant ("# [tenants.acme]" to the end), uncommented."""
    lines = text.splitlines()
    start = lines.index("# [tenants.acme]")
    return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines[start:])


def _check_comment_above_each_key(text: str) -> None:
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "[")):
            assert previous.startswith("#"), f"no comment line above {stripped!r}"
        if stripped:
            previous = stripped


def test_every_field_is_in_the_example_with_a_comment() -> None:
    """Walking the tree, every field of every settings dataclass is a key of the example (or, if a file
    may not set it, named in a comment), and every key line has a comment line just above it. The
    tenants, none by default, are one commented-out example tenant, checked the same way."""
    import tomllib

    text = EXAMPLE.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    table = tomllib.loads(text)
    assert "tenants" not in table
    tenant = _commented_tenant(text)
    table["tenants"] = tomllib.loads(tenant)["tenants"]
    missing = _undocumented(Settings, table, "", comments)
    assert not missing, missing
    _check_comment_above_each_key(text)
    _check_comment_above_each_key(tenant)


def test_the_example_tenant_loads_with_the_default_quotas(tmp_path: Path) -> None:
    """Uncommented, the example's tenant loads: its name from the table, its key digest, and quotas
    equal to the built-in defaults."""
    path = _file(tmp_path, _commented_tenant(EXAMPLE.read_text()))
    (tenant,) = load_settings(path, {}).tenants
    assert tenant.name == "acme" and tenant.key_sha256 == ("0" * 64,)
    assert tenant.quotas == TenantQuotas()


def _tree(cls: type) -> list[type]:
    """The settings dataclasses beneath cls (each once), found by walking the type hints."""
    found: list[type] = []
    for hint in typing.get_type_hints(cls).values():
        for inner in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(inner) and isinstance(inner, type) and inner not in found:
                found += [inner, *(c for c in _tree(inner) if c not in found)]
    return found


def test_every_field_of_the_tree_has_a_row_in_operations() -> None:
    """Each field of each dataclass beneath Settings has a row in docs/operations.md."""
    text = (DOCS / "operations.md").read_text()
    missing = [
        f"{cls.__name__}.{f.name}"
        for cls in _tree(Settings)
        for f in dataclasses.fields(cls)
        if f"| `{f.name}` |" not in text
    ]
    assert len(_tree(Settings)) >= 7 and not missing, missing


def test_every_environment_variable_is_documented() -> None:
    """Each variable load_settings reads is named in the example file and in docs/operations.md."""
    operations = (DOCS / "operations.md").read_text()
    for name in ENVIRONMENT:
        assert name in EXAMPLE.read_text() and f"`{name}`" in operations, name


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[sandbox]\nlimts = 1\n", "sandbox.limts"),
        ("[sandbox.limits]\nmemory = '1g'\n", "sandbox.limits.memory"),
        ("[sandboxes]\nimage = 'x'\n", "sandboxes"),
        ("[endpoints.local]\nurl = 'http://x'\n", "endpoints.local.url"),
        ("[run.prices]\n[run.price]\n", "run.price"),
        ("[tenants.acme]\nkey = []\n", "tenants.acme.key"),
        ("[tenants.acme.quotas]\nmax_sandbox = 1\n", "tenants.acme.quotas.max_sandbox"),
        ("[server]\ntls_ca = ''\n", "server.tls_ca"),
    ],
)
def test_unknown_key_is_refused_naming_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    """A key the tree does not have is refused with its dotted name, the file and the known keys."""
    message = _refusal(tmp_path, text)
    assert message.startswith(f"unknown setting {key!r} in ") and "(known: " in message, message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[sandbox.limits]\ncpus = 'abc'\n", "sandbox.limits.cpus: expected a number, got 'abc'"),
        ("[sandbox.limits]\npids = 1.5\n", "sandbox.limits.pids: expected an integer, got 1.5"),
        ("[sandbox.limits]\npids = true\n", "sandbox.limits.pids: expected an integer, got True"),
        ("[sandbox.limits]\ncpus = nan\n", "sandbox.limits.cpus: expected a finite number"),
        ("[sandbox]\nallow_weak_host = 'yes'\n", "sandbox.allow_weak_host: expected true or false"),
        ("[sandbox]\nimage = 3\n", "sandbox.image: expected a string, got 3"),
        ("[sandbox]\nlimits = 3\n", "sandbox.limits: expected a table, got 3"),
        ("[sandbox]\nruntimes = 'runc'\n", "sandbox.runtimes: expected an array"),
        ("[sandbox]\nruntimes = ['runc', 'kata']\n", "sandbox.runtimes[1]: unknown runtime 'kata'"),
        ("[sandbox]\nruntime = 'kata'\n", "sandbox.runtime: unknown runtime 'kata'"),
        ("[run]\nallowed_models = [1]\n", "run.allowed_models[0]: expected a string, got 1"),
        ("endpoints = 3\n", "endpoints: expected tables [endpoints.NAME], got 3"),
        ("[endpoints.local]\nmodels = 'm'\n", "endpoints.local.models: expected an array"),
        ("tenants = 3\n", "tenants: expected tables [tenants.NAME], got 3"),
        ("[tenants]\nacme = 3\n", "tenants.acme: expected a table, got 3"),
        ("[tenants.acme]\nkeys = 'sha256:00'\n", "tenants.acme.keys: expected an array"),
        ("[tenants.acme]\nkeys = ['md5:00']\n", 'tenants.acme.keys[0]: expected "sha256:<64 hex digits>"'),
        ("[tenants.acme.quotas]\nruntimes = ['kata']\n", "tenants.acme.quotas.runtimes[0]: unknown runtime"),
        ("[tenants.acme.quotas]\nmax_cpus = 'all'\n", "tenants.acme.quotas.max_cpus: expected a number"),
        ("[server]\nallow_insecure_listen = 1\n", "server.allow_insecure_listen: expected true or false"),
    ],
)
def test_wrong_type_is_refused(tmp_path: Path, text: str, needle: str) -> None:
    """A value of the wrong TOML type is refused with the dotted key, what was expected, and the file."""
    assert needle in _refusal(tmp_path, text)


def test_sizes_accept_strings_and_byte_counts(tmp_path: Path) -> None:
    """Every *_bytes field takes "512m"/"1g"-style sizes or an integer byte count."""
    path = _file(
        tmp_path,
        "[sandbox.limits]\nmemory_bytes = '1g'\ntmpfs_bytes = 2097152\nmax_output_bytes = 0\n"
        "[context]\ncache_bytes = '512k'\nmax_read_bytes = '1.5g'\n[server]\nmax_message_bytes = '4MiB'\n",
    )
    settings = load_settings(path, {})
    limits = settings.sandbox.limits
    assert (limits.memory_bytes, limits.tmpfs_bytes, limits.max_output_bytes) == (1 << 30, 2 << 20, 0)
    assert settings.context.cache_bytes == 512 << 10 and settings.context.max_read_bytes == 3 << 29
    assert settings.server.max_message_bytes == 4 << 20
    assert "sandbox.limits.memory_bytes: not a size: 'lots'" in _refusal(
        tmp_path, "[sandbox.limits]\nmemory_bytes = 'lots'\n"
    )
    assert "context.cache_bytes: expected a size" in _refusal(tmp_path, "[context]\ncache_bytes = 1.5\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[sandbox.limits]\ncpus = 0.001\n", "sandbox.limits: cpus must be between 0.01 and 256"),
        ("[sandbox.limits]\nmemory_bytes = '1m'\n", "sandbox.limits: memory must be at least 32m"),
        ("[run]\nmax_depth = 9\n", "run: max depth must be between 1 and 8"),
        ("[sandbox]\nruntime = 'runsc'\nruntimes = ['runc']\n", "sandbox: the default runtime 'runsc'"),
        ("[endpoints.x]\nmax_retries = 11\n", "endpoints.x: max retries must be between 0 and 10"),
        ("[storage]\ndata_dir = 'relative'\n", "storage: data_dir must be an absolute path"),
        ("[storage]\ndatabase_url = 'mysql://h/db'\n", "storage: database_url must be empty"),
        ("[server]\nlisten = 'nowhere'\n", "server: listen must be host:port"),
        ("[server]\nmax_message_bytes = 1024\n", "server: max_message_bytes must be at least 64k"),
        ("[server]\nmetrics_listen = 'unix:/run/m.sock'\n", "server: metrics_listen must be empty (off) or"),
        ("[server]\ntls_cert = '/c.pem'\n", "server: tls_cert and tls_key go together"),
        ("[tenants.'a b']\n", "tenants.a b: a tenant name is 1-64 letters"),
        ("[tenants.acme.quotas]\nmax_sandboxes = -1\n", "tenants.acme.quotas: max_sandboxes must be in"),
        ("[tenants.acme.quotas]\nruntimes = []\n", "tenants.acme.quotas: runtimes must name at least one"),
    ],
)
def test_a_refused_value_names_its_table_and_file(tmp_path: Path, text: str, needle: str) -> None:
    """The dataclasses' own checks still apply, and their refusal says which table and which file."""
    message = _refusal(tmp_path, text)
    assert needle in message, message


def test_environment_over_file_over_defaults(tmp_path: Path) -> None:
    """DOCKER_HOST and OPENAI_BASE_URL win over the file, which wins over the built-in defaults."""
    path = _file(
        tmp_path,
        "[sandbox]\ndocker_url = 'tcp://file:2375'\nimage = 'mine:1'\n"
        "[endpoints.default]\nbase_url = 'http://file/v1'\nmax_retries = 5\n",
    )
    from_file = load_settings(path, {})
    assert from_file.sandbox.docker_url == "tcp://file:2375" and from_file.sandbox.image == "mine:1"
    assert from_file.endpoints[0].base_url == "http://file/v1" and from_file.endpoints[0].max_retries == 5
    env = {"DOCKER_HOST": "unix:///env.sock", "OPENAI_BASE_URL": "http://env/v1"}
    both = load_settings(path, env)
    assert both.sandbox.docker_url == "unix:///env.sock" and both.sandbox.image == "mine:1"
    assert both.endpoints[0].base_url == "http://env/v1" and both.endpoints[0].max_retries == 5
    defaults = load_settings(None, env)
    assert (
        defaults.sandbox.docker_url == "unix:///env.sock"
        and defaults.endpoints[0].base_url == "http://env/v1"
    )
    assert load_settings(None, {"DOCKER_HOST": "", "OPENAI_BASE_URL": ""}).sandbox.docker_url is None


def test_openai_base_url_sets_only_the_default_endpoint(tmp_path: Path) -> None:
    """OPENAI_BASE_URL is the "default" endpoint's; another endpoint keeps the file's base_url."""
    path = _file(
        tmp_path,
        "[endpoints.default]\n[endpoints.local]\nbase_url = 'http://local/v1'\nmodels = ['llama']\n",
    )
    settings = load_settings(path, {"OPENAI_BASE_URL": "http://env/v1"})
    assert [e.base_url for e in settings.endpoints] == ["http://env/v1", "http://local/v1"]


def test_rlm_config_is_the_file_when_no_path_is_given(tmp_path: Path) -> None:
    """With no path, $RLM_CONFIG names the file; an explicit path wins over it; an empty one is none."""
    env_file = _file(tmp_path, "[run]\nmax_iterations = 7\n", "env.toml")
    flag_file = _file(tmp_path, "[run]\nmax_iterations = 9\n", "flag.toml")
    assert load_settings(None, {"RLM_CONFIG": str(env_file)}).run.max_iterations == 7
    assert load_settings(flag_file, {"RLM_CONFIG": str(env_file)}).run.max_iterations == 9
    assert load_settings(None, {"RLM_CONFIG": ""}).run.max_iterations == 30
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, {"RLM_CONFIG": str(tmp_path / "gone.toml")})


def test_api_key_comes_from_the_variable_api_key_env_names_and_is_never_shown(tmp_path: Path) -> None:
    """Each endpoint's key is read from its api_key_env variable, and repr(settings) does not show it."""
    path = _file(tmp_path, "[endpoints.default]\n[endpoints.deep]\napi_key_env = 'DEEPSEEK_KEY'\n")
    settings = load_settings(path, {"OPENAI_API_KEY": "sk-openai-secret", "DEEPSEEK_KEY": "sk-deep-secret"})
    assert [e.api_key for e in settings.endpoints] == ["sk-openai-secret", "sk-deep-secret"]
    shown = repr(settings) + str(settings)
    assert "sk-openai-secret" not in shown and "sk-deep-secret" not in shown
    assert load_settings(path, {}).endpoints[1].api_key == ""


def test_api_key_and_name_in_a_file_are_refused(tmp_path: Path) -> None:
    """A file may not hold an API key, nor rename an endpoint: both are refused by name."""
    message = _refusal(tmp_path, "[endpoints.default]\napi_key = 'sk-in-a-file'\n")
    assert "endpoints.default.api_key cannot be set in a settings file" in message
    assert "sk-in-a-file" not in message
    assert "endpoints.x.name cannot be set" in _refusal(tmp_path, "[endpoints.x]\nname = 'y'\n")


def test_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    """A path that does not exist, or is not a readable file, is refused with the path and why."""
    with pytest.raises(ConfigError, match=re.escape(f"settings file {tmp_path / 'no.toml'} does not exist")):
        load_settings(tmp_path / "no.toml", {})
    with pytest.raises(ConfigError, match=re.escape(f"cannot read settings file {tmp_path}: ")):
        load_settings(tmp_path, {})
    with pytest.raises(ConfigError, match="path is empty"):
        load_settings("", {})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"x = '\xff'\n")
    with pytest.raises(ConfigError, match=re.escape(f"settings file {binary} is not UTF-8")):
        load_settings(binary, {})


def test_bad_toml_syntax_is_refused_with_path_and_position(tmp_path: Path) -> None:
    """A file that is not TOML is refused with its path and the parser's line and column."""
    message = _refusal(tmp_path, "[sandbox]\nimage = \n")
    assert "is not valid TOML" in message and "line 2" in message, message


def test_config_error_is_bad_input() -> None:
    """ConfigError is an InvalidInputError leaving by INVALID_ARGUMENT, so entry points exit 2."""
    error = ConfigError("x")
    assert isinstance(error, InvalidInputError) and error.code == "INVALID_ARGUMENT"


def test_endpoint_for_routes_a_model(tmp_path: Path) -> None:
    """A model goes to the first endpoint listing it, else to "default", else to the first endpoint."""
    path = _file(
        tmp_path,
        "[endpoints.local]\nbase_url = 'http://local/v1'\nmodels = ['llama', 'qwen']\n"
        "[endpoints.default]\n[endpoints.other]\nmodels = ['qwen']\n",
    )
    settings = load_settings(path, {})
    assert settings.endpoint_for("qwen").name == "local"
    assert settings.endpoint_for("gpt-4o-mini").name == "default"
    no_default = load_settings(_file(tmp_path, "[endpoints.a]\n[endpoints.b]\n", "b.toml"), {})
    assert no_default.endpoint_for("anything").name == "a"
    assert Settings().endpoint_for("m") == LLMEndpoint()
    assert load_settings(_file(tmp_path, "[endpoints]\n", "c.toml"), {}).endpoints == (LLMEndpoint(),)


def test_prices_are_read_into_the_run_config(tmp_path: Path) -> None:
    """[run.prices] "model" = [input, output] fills RLMConfig.prices_per_mtok; a bad pair is refused."""
    path = _file(tmp_path, '[run.prices]\n"gpt-4o-mini" = [0.15, 0.6]\n"local" = [0, 0]\n')
    run = load_settings(path, {}).run
    assert run.prices_per_mtok == (("gpt-4o-mini", 0.15, 0.6), ("local", 0.0, 0.0))
    assert run.price("gpt-4o-mini") == (0.15, 0.6)
    assert "run.prices.m: expected [input_usd_per_mtok, output_usd_per_mtok]" in _refusal(
        tmp_path, "[run.prices]\nm = [1]\n"
    )
    assert "run.prices.m: a price must not be negative" in _refusal(tmp_path, "[run.prices]\nm = [1, -1]\n")
    assert "run.prices.m: expected a number, got 'x'" in _refusal(tmp_path, "[run.prices]\nm = ['x', 1]\n")


def test_runtimes_and_optional_values(tmp_path: Path) -> None:
    """Runtimes are parsed by Runtime.parse, arrays become tuples, and "" means None for optional keys."""
    path = _file(
        tmp_path,
        "[sandbox]\nruntime = 'RUNSC'\nruntimes = ['runsc']\nsocket_root = ''\n"
        "[run]\nsub_model = 'small'\nallowed_models = ['a', 'b']\n",
    )
    settings = load_settings(path, {})
    assert settings.sandbox.runtime is Runtime.RUNSC and settings.sandbox.runtimes == (Runtime.RUNSC,)
    assert settings.sandbox.socket_root is None
    assert settings.run.sub == "small" and settings.run.allowed_models == ("a", "b")


def test_data_dir_is_expanded_from_the_given_home(tmp_path: Path) -> None:
    """A leading ~ in storage.data_dir is the HOME of the environment given, not of this process."""
    assert load_settings(None, {"HOME": "/srv/rlm"}).storage.data_dir == "/srv/rlm/.local/share/rlm"
    path = _file(tmp_path, "[storage]\ndata_dir = '/var/lib/rlm'\n")
    assert load_settings(path, {"HOME": "/srv/rlm"}).storage.data_dir == "/var/lib/rlm"


def test_flags_given_win_over_the_settings(tmp_path: Path) -> None:
    """A command-line flag given replaces its setting; a flag left out (None) keeps the file's value."""
    path = _file(
        tmp_path,
        "[sandbox]\nimage = 'mine:1'\n[sandbox.limits]\nmemory_bytes = '256m'\ncpus = 2\n"
        "[run]\nroot_model = 'big'\nmax_iterations = 5\n",
    )
    settings = load_settings(path, {})
    left_out = argparse.Namespace(memory=None, cpus=None, timeout=None, image=None, runtime=None)
    assert with_flags(settings, left_out) == settings
    given = argparse.Namespace(memory="1g", cpus=None, timeout=5.0, image="other:2", runtime="runsc")
    sandbox = with_flags(settings, given).sandbox
    assert (sandbox.limits.memory_bytes, sandbox.limits.cpus, sandbox.limits.cell_timeout_s) == (
        1 << 30,
        2,
        5,
    )
    assert sandbox.image == "other:2" and sandbox.runtime is Runtime.RUNSC
    run = with_flags(settings, argparse.Namespace(model=None, max_iterations=12, runtime=None)).run
    assert (run.root_model, run.max_iterations) == ("big", 12)
    small_model = argparse.Namespace(
        max_output_chars=4000,
        stream_replies=True,
        max_reply_tokens=1024,
        check_answers=True,
        stop_repeating=True,
    )
    flagged = with_flags(settings, small_model)
    assert (flagged.run.max_output_chars, flagged.run.max_completion_tokens) == (4000, 1024)
    assert flagged.run.check_empty_answers and not flagged.run.check_unread_answers
    assert not settings.run.check_unread_answers and not settings.run.check_empty_answers
    assert all(e.stream for e in flagged.endpoints) and not any(e.stream for e in settings.endpoints)
    assert all(e.stop_repeating for e in flagged.endpoints)
    only_runc = load_settings(_file(tmp_path, "[sandbox]\nruntimes = ['runc']\n", "r.toml"), {})
    with pytest.raises(InvalidInputError, match="not offered here"):
        with_flags(only_runc, argparse.Namespace(runtime="runsc"))


def test_tenants_are_read_from_their_tables(tmp_path: Path) -> None:
    """[tenants.NAME] tables become Tenants in the file's order: the name from the table, "sha256:"
    digests from keys (lowercased), quotas from [tenants.NAME.quotas] with sizes read as sizes."""
    upper = "AB" * 32
    path = _file(
        tmp_path,
        f'[tenants.acme]\nkeys = ["sha256:{upper}", "sha256:{"cd" * 32}"]\n'
        "[tenants.acme.quotas]\nmax_memory_bytes = '2g'\ncontext_bytes = 1048576\nruntimes = ['runsc']\n"
        "models = ['small']\ncalls_per_s = 2.5\n"
        "[tenants.beta]\n",
    )
    acme, beta = load_settings(path, {}).tenants
    assert acme.name == "acme" and acme.key_sha256 == ("ab" * 32, "cd" * 32)
    assert acme.quotas == TenantQuotas(
        max_memory_bytes=2 << 30,
        context_bytes=1 << 20,
        runtimes=(Runtime.RUNSC,),
        models=("small",),
        calls_per_s=2.5,
    )
    assert beta == Tenant("beta")
    assert load_settings(None, {}).tenants == ()


def test_tenant_refusals_name_the_tenant_and_never_echo_a_key(tmp_path: Path) -> None:
    """A key pasted where a hash belongs is refused without being shown; a name set in the table, a
    repeated digest across tenants, and (by TOML) a repeated tenant are refused."""
    secret = "rlm_" + "k" * 43
    message = _refusal(tmp_path, f"[tenants.acme]\nkeys = ['{secret}']\n")
    assert "tenants.acme.keys[0]" in message and secret not in message and "not shown" in message
    assert "tenants.acme.name cannot be set" in _refusal(tmp_path, "[tenants.acme]\nname = 'b'\n")
    digest = "sha256:" + "ef" * 32
    shared = f"[tenants.a]\nkeys = ['{digest}']\n[tenants.b]\nkeys = ['{digest}']\n"
    assert "a key belongs to one tenant" in _refusal(tmp_path, shared)
    assert "is not valid TOML" in _refusal(tmp_path, "[tenants.a]\n[tenants.a]\n")


def test_server_tls_and_listen_settings(tmp_path: Path) -> None:
    """The server's TLS files and allow_insecure_listen are read from [server]; no TLS by default."""
    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    path = _file(
        tmp_path,
        f"[server]\nlisten = '0.0.0.0:443'\ntls_cert = '{pem}'\ntls_key = '{pem}'\n"
        "allow_insecure_listen = true\nmetrics_listen = '127.0.0.1:9464'\n",
    )
    server = load_settings(path, {}).server
    assert (server.tls_cert, server.tls_key, server.tls_client_ca) == (str(pem), str(pem), "")
    assert server.allow_insecure_listen and server.metrics_listen == "127.0.0.1:9464"
    default = Settings().server
    assert (default.tls_cert, default.allow_insecure_listen, default.metrics_listen) == ("", False, "")
