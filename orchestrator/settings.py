"""One settings tree for the whole platform, loaded once by an entry point.

    settings = load_settings(args.config, os.environ)  # built-in defaults, then the file, then the env
    open_sandbox(dir, config=settings.sandbox, context_limits=settings.context)

The file is TOML; its tables mirror the tree (`[sandbox]`, `[sandbox.limits]`, `[context]`, `[run]`,
`[run.prices]`, `[endpoints.NAME]`, `[storage]`, `[server]`, `[tenants.NAME]` with its
`[tenants.NAME.quotas]`, `[pool]` with its `[pool.profiles.NAME]`) and docs/config.example.toml
lists every key with its default. The loader walks the dataclasses' fields and type hints, so a field
added to a settings dataclass is a key of the file with nothing more to write. Every value is checked
when loaded; every refusal is a ConfigError naming the dotted key and the file.

Only `load_settings` reads the environment, and only from the mapping it is given (the entry points
pass os.environ): the variables in `ENVIRONMENT`, and each endpoint's `api_key_env`. Library code takes
the parts of the tree it needs and reads no environment of its own.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .config import ContextLimits, LLMEndpoint, RLMConfig, Runtime, SandboxConfig, SandboxLimits, parse_size
from .errors import ConfigError, InvalidInputError
from .server.tenants import Tenant, TenantKeys, parse_stored_digest

DEFAULT_ENDPOINT = "default"
DEFAULT_DATA_DIR = "~/.local/share/rlm"
DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")

# Every environment variable load_settings reads, and what it sets. The environment wins over the file.
ENVIRONMENT: Mapping[str, str] = {
    "RLM_CONFIG": "the settings file, when no path (--config) is given",
    "OPENAI_BASE_URL": "endpoints.default.base_url",
    "DOCKER_HOST": "sandbox.docker_url",
    "OPENAI_API_KEY": "the API key of each endpoint whose api_key_env names it (the default); "
    "an endpoint with another api_key_env reads that variable instead",
}


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where the platform keeps what outlives a process."""

    data_dir: str = DEFAULT_DATA_DIR  # a leading ~ is expanded at load
    database_url: str = field(default="", repr=False)  # "": SQLite in data_dir; a URL may hold a password

    def __post_init__(self) -> None:
        _check(
            os.path.isabs(self.data_dir) or self.data_dir.startswith("~"),
            f"data_dir must be an absolute path (or start with ~), got {self.data_dir!r}",
        )
        scheme = self.database_url.partition(":")[0].lower()
        _check(
            not self.database_url or scheme in _DATABASE_SCHEMES,
            f"database_url must be empty (SQLite in data_dir) or a {'/'.join(_DATABASE_SCHEMES)} URL",
        )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The gRPC service of `rlm serve`."""

    listen: str = "127.0.0.1:50051"  # host:port, or unix:PATH
    metrics_listen: str = ""  # host:port of the Prometheus endpoint; "": none
    max_message_bytes: int = 16 * 1024**2  # largest gRPC message received or sent
    drain_grace_s: float = 30.0  # on shutdown, how long running calls may take to finish
    session_idle_s: float = 600.0  # a session unused this long is closed
    tls_cert: str = ""  # PEM certificate chain of the server; "": no TLS (with tls_key)
    tls_key: str = ""  # PEM private key of tls_cert (a path: the key itself is never in the settings)
    tls_client_ca: str = ""  # PEM CA bundle; set: every client must present a certificate it signed (mTLS)
    allow_insecure_listen: bool = False  # listen on a non-loopback address without TLS (logged as a warning)

    def __post_init__(self) -> None:
        _check(_is_address(self.listen), f"listen must be host:port or unix:PATH, got {self.listen!r}")
        _check(
            not self.metrics_listen or _is_host_port(self.metrics_listen),
            f"metrics_listen must be empty (off) or host:port, got {self.metrics_listen!r}",
        )
        _check(
            bool(self.tls_cert) == bool(self.tls_key), "tls_cert and tls_key go together: set both or neither"
        )
        _check(
            not self.tls_client_ca or bool(self.tls_cert), "tls_client_ca (mTLS) needs tls_cert and tls_key"
        )
        for key in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, key)
            _check(not path or os.path.isabs(path), f"{key} must be an absolute path, got {path!r}")
        _check(
            64 * 1024 <= self.max_message_bytes < 2**31,
            "max_message_bytes must be at least 64k and below 2g (gRPC's limit)",
        )
        _check(0 <= self.drain_grace_s <= 3600, "drain grace must be in [0, 3600] s")
        _check(0 < self.session_idle_s <= 7 * 86400, "session idle time must be in (0, 604800] s")


@dataclass(frozen=True, slots=True)
class PoolProfile:
    """One kind of sandbox the warm pool keeps started (`[pool.profiles.NAME]`): a runtime and limits.

    A request is served from the pool only when its runtime and limits equal a profile's exactly.
    """

    name: str = "default"  # the table's own name
    runtime: Runtime | None = None  # None: sandbox.runtime
    limits: SandboxLimits | None = None  # None: sandbox.limits; a table starts from the built-in limits


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """The warm pool (`[pool]`): sandboxes started ahead of demand, each handed out once, then destroyed.

    The sizes apply to each profile.
    """

    enabled: bool = False
    min: int = 4  # idle sandboxes kept started
    max: int = 16  # most sandboxes idle or starting at once (handed-out ones are the runs', not counted)
    per_tenant_share: float = 0.5  # of max: the most pooled sandboxes one tenant holds at once
    idle_retire_s: float = 300.0  # an idle sandbox beyond min, unused this long, is destroyed
    wait_s: float = 30.0  # how long a request waits, in order, for a sandbox when none is idle
    start_concurrency: int = 2  # sandboxes the pool starts at once (all profiles)
    profiles: tuple[PoolProfile, ...] = (PoolProfile(),)

    def __post_init__(self) -> None:
        _check(0 <= self.min <= 1024, f"min must be in [0, 1024], got {self.min}")
        _check(1 <= self.max <= 1024, f"max must be in [1, 1024], got {self.max}")
        _check(self.min <= self.max, f"min ({self.min}) must not be more than max ({self.max})")
        _check(0 < self.per_tenant_share <= 1, "per_tenant_share must be in (0, 1]")
        _check(0 < self.idle_retire_s <= 7 * 86400, "idle_retire_s must be in (0, 604800] s")
        _check(0 <= self.wait_s <= 3600, "wait_s must be in [0, 3600] s")
        _check(1 <= self.start_concurrency <= 64, "start_concurrency must be in [1, 64]")
        _check(bool(self.profiles), "the pool needs at least one profile")
        names = [p.name for p in self.profiles]
        _check(len(set(names)) == len(names), f"pool profile names must be unique, got {names}")

    def tenant_share(self) -> int:
        """The most sandboxes of one profile a tenant may hold from the pool at once (at least 1)."""
        return max(1, int(self.per_tenant_share * self.max))


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration: each part goes to the constructor that takes it."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    context: ContextLimits = field(default_factory=ContextLimits)
    run: RLMConfig = field(default_factory=RLMConfig)
    endpoints: tuple[LLMEndpoint, ...] = (LLMEndpoint(),)
    storage: StorageSettings = field(default_factory=StorageSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    tenants: tuple[Tenant, ...] = ()  # who may call `rlm serve`; none: nobody
    pool: PoolSettings = field(default_factory=PoolSettings)

    def __post_init__(self) -> None:
        _check(bool(self.endpoints), "at least one endpoint is needed")
        for profile in self.pool.profiles:
            runtime = profile.runtime or self.sandbox.runtime
            _check(
                runtime in self.sandbox.runtimes,
                f"pool profile {profile.name!r}: runtime {str(runtime)!r} is not among sandbox.runtimes",
            )
        names = [e.name for e in self.endpoints]
        _check(len(set(names)) == len(names), f"endpoint names must be unique, got {names}")
        tenants = [t.name for t in self.tenants]
        _check(len(set(tenants)) == len(tenants), f"tenant names must be unique, got {tenants}")
        TenantKeys(self.tenants)  # refuses a key listed under two tenants

    def endpoint_for(self, model: str) -> LLMEndpoint:
        """The first endpoint listing `model`, else the one named "default", else the first."""
        for endpoint in self.endpoints:
            if model in endpoint.models:
                return endpoint
        for endpoint in self.endpoints:
            if endpoint.name == DEFAULT_ENDPOINT:
                return endpoint
        return self.endpoints[0]


def load_settings(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Settings:
    """Built-in defaults, then the TOML file (`path`, else $RLM_CONFIG, else none), then the environment.

    Raises ConfigError for a missing or unreadable file, bad TOML, an unknown key or a bad value.
    """
    if path is not None:
        file: str | None = os.fspath(path)
        if not file:
            raise ConfigError("the settings file path is empty")
    else:
        file = environ.get("RLM_CONFIG") or None
    table = _read_toml(file) if file is not None else {}
    settings = _build(Settings, table, "", file)
    _check_server_files(settings.server, file)
    return _apply_environment(settings, environ)


def file_key(cls: type, name: str) -> str | None:
    """The key a dataclass field has in the settings file; None when a file may not set it."""
    if (cls, name) in _NOT_IN_FILE:
        return None
    return _FILE_KEYS.get((cls, name), name)


def not_in_file(cls: type, name: str) -> str | None:
    """Why a file may not set this field (None: it may)."""
    return _NOT_IN_FILE.get((cls, name))


# --- reading the file -----------------------------------------------------------------------------------


def _read_toml(file: str) -> dict[str, Any]:
    try:
        with open(file, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"settings file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"settings file {file} is not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {file} is not valid TOML: {exc}") from None


def _build(
    cls: type[Any],
    table: Mapping[str, Any],
    prefix: str,
    file: str | None,
    fixed: Mapping[str, Any] | None = None,
) -> Any:
    """One dataclass from its TOML table: every key known, every value read by its field's type hint."""
    hints = _hints(cls)
    by_key = {
        key: f for f in dataclasses.fields(cls) if (key := file_key(cls, f.name)) is not None and f.init
    }
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = prefix + key
        if key not in by_key:
            reason = not_in_file(cls, key)
            if reason is not None:
                raise ConfigError(f"{dotted} cannot be set in a settings file: {reason}{_in(file)}")
            known = ", ".join(by_key)
            raise ConfigError(f"unknown setting {dotted!r} in {file} (known: {known})")
        name = by_key[key].name
        special = _SPECIAL.get((cls, name))
        if special is not None:
            values[name] = special(value, dotted, file)
        else:
            values[name] = _read(hints[name], value, dotted, file, name)
    values.update(fixed or {})
    try:
        return cls(**values)
    except ConfigError:
        raise
    except InvalidInputError as exc:
        where = prefix.rstrip(".") or "settings"
        raise ConfigError(f"{where}: {exc.message}{_in(file)}") from None


def _read(hint: Any, value: Any, dotted: str, file: str | None, name: str) -> Any:
    """A TOML value as the field's type, or a ConfigError saying what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"{dotted}: no reader for {hint!r}")
        if value == "":  # TOML has no null: an empty string means "not set"
            return None
        return _read(inner[0], value, dotted, file, name)
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{dotted}: no reader for {hint!r}")
        if not isinstance(value, list):
            raise _expected("an array", value, dotted, file)
        return tuple(_read(args[0], item, f"{dotted}[{i}]", file, name) for i, item in enumerate(value))
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise _expected("a table", value, dotted, file)
        return _build(hint, value, dotted + ".", file)
    if hint is bool:
        if not isinstance(value, bool):
            raise _expected("true or false", value, dotted, file)
        return value
    if hint is int and name.endswith("_bytes"):
        return _read_size(value, dotted, file)
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _expected("an integer", value, dotted, file)
        return value
    if hint is float:
        return _read_number(value, dotted, file)
    if hint is str:
        if not isinstance(value, str):
            raise _expected("a string", value, dotted, file)
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if not isinstance(value, str):
            raise _expected("a string", value, dotted, file)
        parse = getattr(hint, "parse", hint)
        try:
            return parse(value)
        except InvalidInputError as exc:
            raise ConfigError(f"{dotted}: {exc.message}{_in(file)}") from None
        except ValueError:
            choices = ", ".join(str(m.value) for m in hint)
            raise ConfigError(f"{dotted}: expected one of {choices}, got {value!r}{_in(file)}") from None
    raise TypeError(f"{dotted}: no reader for {hint!r}")


def _read_size(value: Any, dotted: str, file: str | None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # a byte count; the dataclass says which counts it takes (some allow 0)
    if not isinstance(value, str):
        raise _expected("a size (512m, 1g) or a byte count", value, dotted, file)
    try:
        return parse_size(value)
    except InvalidInputError as exc:
        raise ConfigError(f"{dotted}: {exc.message}{_in(file)}") from None


def _read_number(value: Any, dotted: str, file: str | None) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _expected("a number", value, dotted, file)
    if not math.isfinite(value):
        raise _expected("a finite number", value, dotted, file)
    return float(value)


def _read_prices(value: Any, dotted: str, file: str | None) -> tuple[tuple[str, float, float], ...]:
    """`[run.prices]`: "model" = [input USD per 1M tokens, output USD per 1M tokens]."""
    if not isinstance(value, dict):
        raise _expected("a table of model = [input, output]", value, dotted, file)
    prices = []
    for model, pair in value.items():
        key = f"{dotted}.{model}"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _expected("[input_usd_per_mtok, output_usd_per_mtok]", pair, key, file)
        usd_in, usd_out = (_read_number(p, key, file) for p in pair)
        if usd_in < 0 or usd_out < 0:
            raise ConfigError(f"{key}: a price must not be negative, got {pair!r}{_in(file)}")
        prices.append((model, usd_in, usd_out))
    return tuple(prices)


def _named_tables(cls: type[Any], default: tuple[Any, ...]) -> Callable[[Any, str, str | None], Any]:
    """A reader of `[KEY.NAME]` tables, one `cls` each named by its table, in the file's order."""

    def read(value: Any, dotted: str, file: str | None) -> tuple[Any, ...]:
        if not isinstance(value, dict):
            raise _expected(f"tables [{dotted}.NAME]", value, dotted, file)
        items = []
        for name, table in value.items():
            key = f"{dotted}.{name}"
            if not isinstance(table, dict):
                raise _expected("a table", table, key, file)
            items.append(_build(cls, table, key + ".", file, fixed={"name": name}))
        return tuple(items) or default

    return read


def _read_key_digests(value: Any, dotted: str, file: str | None) -> tuple[str, ...]:
    """`keys = ["sha256:<hex>", ...]`: the digests of a tenant's API keys (never a key: not echoed)."""
    if not isinstance(value, list):
        raise _expected('an array of "sha256:<hex>" strings', value, dotted, file)
    digests = []
    for i, item in enumerate(value):
        try:
            digests.append(parse_stored_digest(item))
        except InvalidInputError:
            # The value is not shown: an operator may have pasted the key itself.
            raise ConfigError(
                f'{dotted}[{i}]: expected "sha256:<64 hex digits>", the hash `rlm tenants add` writes '
                f"(the value is not shown: it may be a key){_in(file)}"
            ) from None
    return tuple(digests)


# Fields whose key in the file differs from the field's name, read by a reader of their own, or never
# taken from a file.
_FILE_KEYS: dict[tuple[type, str], str] = {
    (RLMConfig, "prices_per_mtok"): "prices",
    (Tenant, "key_sha256"): "keys",
}
_SPECIAL: dict[tuple[type, str], Callable[[Any, str, str | None], Any]] = {
    (RLMConfig, "prices_per_mtok"): _read_prices,
    (Settings, "endpoints"): _named_tables(LLMEndpoint, (LLMEndpoint(),)),
    (Settings, "tenants"): _named_tables(Tenant, ()),
    (PoolSettings, "profiles"): _named_tables(PoolProfile, (PoolProfile(),)),
    (Tenant, "key_sha256"): _read_key_digests,
}
_NOT_IN_FILE: dict[tuple[type, str], str] = {
    (LLMEndpoint, "name"): "it is the table's own name, [endpoints.NAME]",
    (Tenant, "name"): "it is the table's own name, [tenants.NAME]",
    (PoolProfile, "name"): "it is the table's own name, [pool.profiles.NAME]",
    (LLMEndpoint, "api_key"): "an API key is read from the variable named by api_key_env, never from a file",
}


def _check_server_files(server: ServerSettings, file: str | None) -> None:
    """The TLS files named exist, are readable and hold PEM: refused at load, not at the first call."""
    for key in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(server, key)
        if not path:
            continue
        try:
            with open(path, "rb") as handle:
                head = handle.read(1024 * 1024)
        except OSError as exc:
            raise ConfigError(f"server.{key}: cannot read {path}: {exc.strerror or exc}{_in(file)}") from None
        if b"-----BEGIN " not in head:
            raise ConfigError(f"server.{key}: {path} is not a PEM file{_in(file)}")


# --- the environment ------------------------------------------------------------------------------------


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    sandbox = settings.sandbox
    if docker_host := environ.get("DOCKER_HOST", ""):
        sandbox = replace(sandbox, docker_url=docker_host)
    base_url = environ.get("OPENAI_BASE_URL", "")
    endpoints = []
    for endpoint in settings.endpoints:
        changes: dict[str, Any] = {"api_key": environ.get(endpoint.api_key_env, "")}
        if base_url and endpoint.name == DEFAULT_ENDPOINT:
            changes["base_url"] = base_url
        endpoints.append(replace(endpoint, **changes))
    storage = replace(settings.storage, data_dir=_expand_user(settings.storage.data_dir, environ))
    return replace(settings, sandbox=sandbox, endpoints=tuple(endpoints), storage=storage)


def _expand_user(path: str, environ: Mapping[str, str]) -> str:
    """A leading ~ (or ~user) expanded, with HOME taken from `environ` rather than the process."""
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME")
        if not home:
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
        rest = path[2:]
        return os.path.join(home, rest) if rest else home
    if path.startswith("~"):
        return os.path.expanduser(path)  # ~user: from the password database, not the environment
    return path


# --- helpers --------------------------------------------------------------------------------------------


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _in(file: str | None) -> str:
    return f" (in {file})" if file else ""


def _expected(what: str, value: Any, dotted: str, file: str | None) -> ConfigError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ConfigError(f"{dotted}: expected {what}, got {shown}{_in(file)}")


def _is_address(text: str) -> bool:
    if text.startswith("unix:"):
        return len(text) > len("unix:")
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535)  # 0: a free port


def _is_host_port(text: str) -> bool:
    return not text.startswith("unix:") and _is_address(text)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)
