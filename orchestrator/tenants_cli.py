"""`rlm tenants`: the tenants of `rlm serve` and their API keys, kept in the settings file.

    rlm tenants add NAME [--config FILE]          a new tenant, default quotas, one new key (shown once)
    rlm tenants add-key NAME [--config FILE]      one more key for a tenant (rotation), shown once
    rlm tenants revoke NAME (--key-prefix PREFIX | --all) [--config FILE]
    rlm tenants list [--config FILE]              names, key counts, quotas; never a key or a hash

The file is `--config FILE`, else $RLM_CONFIG. `add` creates it when missing (mode 0600). Edits go
through tomlkit, which keeps the file's comments, order and layout (the standard library only reads
TOML), and are written atomically, only once the edited file loads as a whole. The file holds only
the sha256 of each key; the key is printed once, as the last line of the output. `rlm serve` reads the
file when it starts: a key revoked here is refused from its next start on.

Exit status: 0 done, 2 bad input (an unknown or existing tenant, no prefix match, a bad file).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from .errors import ConfigError, InvalidInputError, RLMError
from .server.tenants import HASH_PREFIX, KEY_PREFIX, Tenant, TenantQuotas, key_digest, new_api_key
from .settings import load_settings

EXIT_OK, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 2, 3  # as every rlm command
_MIN_PREFIX = 8  # hex digits of a hash that pick one key
_KEY_ID = 12  # hex digits shown as a key's id


def add_tenants_parser(sub: Any) -> None:
    """`rlm tenants ...` on the `rlm` parser's subcommands."""
    tenants = sub.add_parser("tenants", help="the tenants of rlm serve and their API keys")
    actions = tenants.add_subparsers(dest="tenants_command", required=True, parser_class=type(tenants))
    add = actions.add_parser("add", help="add a tenant with default quotas and one new API key")
    add_key = actions.add_parser("add-key", help="give a tenant one more API key (to rotate keys)")
    revoke = actions.add_parser("revoke", help="remove a tenant's API keys")
    listing = actions.add_parser("list", help="the tenants, their key counts and quotas")
    for parser in (add, add_key, revoke):
        parser.add_argument("name", metavar="NAME", help="the tenant's name")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--key-prefix",
        metavar="PREFIX",
        help="the key whose hash starts with PREFIX (sha256:<at least 8 hex digits>, as the file and "
        "`add` show it), or the key itself",
    )
    which.add_argument("--all", action="store_true", help="every key of the tenant")
    for parser in (add, add_key, revoke, listing):
        parser.add_argument(
            "--config", default=None, metavar="FILE", help="the settings file; default $RLM_CONFIG"
        )


def tenants_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run one `rlm tenants` command: 0 when done; an error is one line on stderr, exit status 2 for
    bad input (3 for any other of our errors)."""
    try:
        return _run(args, environ)
    except InvalidInputError as exc:
        print(f"rlm: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    except RLMError as exc:
        print(f"rlm: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    path = _config_path(args.config, environ)
    if args.tenants_command == "list":
        _list(path)
    elif args.tenants_command == "add":
        _add(path, args.name)
    elif args.tenants_command == "add-key":
        _add_key(path, args.name)
    else:
        _revoke(path, args.name, prefix=args.key_prefix, everything=args.all)
    return EXIT_OK


def _config_path(given: str | None, environ: Mapping[str, str]) -> Path:
    text = given or environ.get("RLM_CONFIG") or ""
    if not text:
        raise InvalidInputError("no settings file: give --config FILE (or set RLM_CONFIG)")
    return Path(text)


# --- the commands ------------------------------------------------------------------------------------


def _add(path: Path, name: str) -> None:
    Tenant(name)  # the name's rules, before anything is written
    document = _read(path)
    tenants = _tenants(document, create=True)
    if name in tenants:
        raise InvalidInputError(
            f"tenant {name!r} already exists in {path} (another key: rlm tenants add-key {name})"
        )
    key = new_api_key()
    table = tomlkit.table()
    table.add(tomlkit.comment("sha256 of each API key (rlm tenants add-key / revoke); never a key"))
    table.add("keys", [HASH_PREFIX + key_digest(key)])
    table.add("quotas", _default_quotas())
    tenants.add(name, table)
    created = _write(path, document)
    print(f"{'created' if created else 'updated'} {path}: tenant {name!r} with default quotas")
    _show_key(name, key)


def _add_key(path: Path, name: str) -> None:
    document = _read(path)
    table = _tenant(document, name, path)
    key = new_api_key()
    keys = table.get("keys")
    if keys is None:
        table["keys"] = [HASH_PREFIX + key_digest(key)]
    else:
        keys.append(HASH_PREFIX + key_digest(key))
    _write(path, document)
    print(f"updated {path}: tenant {name!r} has {len(table['keys'])} keys")
    _show_key(name, key)


def _revoke(path: Path, name: str, *, prefix: str | None, everything: bool) -> None:
    document = _read(path)
    table = _tenant(document, name, path)
    stored = [str(k) for k in table.get("keys", [])]
    if everything:
        gone = stored
    else:
        assert prefix is not None
        gone = [k for k in stored if _matches(k, prefix)]
        if not gone:
            raise InvalidInputError(f"no key of tenant {name!r} matches that prefix (in {path})")
        if len(gone) > 1:
            raise InvalidInputError(
                f"{len(gone)} keys of tenant {name!r} match that prefix: give more digits"
            )
    kept = [k for k in stored if k not in gone]
    keys = tomlkit.array()
    keys.extend(kept)
    table["keys"] = keys
    _write(path, document)
    print(
        f"updated {path}: {len(gone)} key(s) of tenant {name!r} revoked, {len(kept)} left; "
        "rlm serve refuses them from its next start (it reads the file when it starts)"
    )


def _list(path: Path) -> None:
    settings = load_settings(path, {})
    if not settings.tenants:
        print(f"no tenants in {path}")
    for tenant in settings.tenants:
        keys = len(tenant.key_sha256)
        quotas = " ".join(f"{k}={_shown(v)}" for k, v in _quota_values(tenant.quotas).items())
        print(f"{tenant.name}: {keys} key{'' if keys == 1 else 's'}; {quotas}")


# --- helpers -----------------------------------------------------------------------------------------


def _show_key(name: str, key: str) -> None:
    key_id = HASH_PREFIX + key_digest(key)[:_KEY_ID]
    print(f"key id {key_id} (to revoke it: rlm tenants revoke {name} --key-prefix {key_id})")
    print("the API key follows, shown this once (only its sha256 is kept); clients send it as")
    print("'authorization: Bearer <key>':")
    print(key)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value) or "any"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _matches(stored: str, prefix: str) -> bool:
    text = prefix.strip()
    if text.startswith(KEY_PREFIX):  # the key itself: its hash must match whole
        return stored == HASH_PREFIX + key_digest(text)
    digits = text.removeprefix(HASH_PREFIX).lower()
    if len(digits) < _MIN_PREFIX or any(c not in "0123456789abcdef" for c in digits):
        raise InvalidInputError(
            f"--key-prefix is {HASH_PREFIX}<at least {_MIN_PREFIX} hex digits> (or the key itself)"
        )
    return stored.lower().startswith(HASH_PREFIX + digits)


def _quota_values(quotas: TenantQuotas) -> dict[str, Any]:
    """The quotas as the file spells them: sizes as 1g, runtimes by name."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(quotas):
        value = getattr(quotas, f.name)
        if f.name.endswith("_bytes"):
            value = _size(value)
        elif isinstance(value, tuple):
            value = [str(v) for v in value]
        values[f.name] = value
    return values


def _default_quotas() -> Table:
    table = tomlkit.table()
    table.add(tomlkit.comment("the defaults; docs/config.example.toml says what each one does"))
    for key, value in _quota_values(TenantQuotas()).items():
        table.add(key, value)
    table.add(tomlkit.nl())
    return table


def _size(n: int) -> str | int:
    for unit, scale in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return n


def _read(path: Path) -> tomlkit.TOMLDocument:
    """The file as an editable document (a new one when it does not exist), after it loads whole."""
    if not path.exists():
        return tomlkit.document()
    load_settings(path, {})  # a file that does not load is not edited: its error says what to fix
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ConfigError(f"cannot edit settings file {path}: {exc}") from None


def _tenants(document: tomlkit.TOMLDocument, *, create: bool) -> Table:
    tenants = document.get("tenants")
    if tenants is None and create:
        tenants = tomlkit.table(is_super_table=True)
        document.add("tenants", tenants)
    if not isinstance(tenants, Table):
        raise InvalidInputError("the settings file has no [tenants.NAME] tables")
    return tenants


def _tenant(document: tomlkit.TOMLDocument, name: str, path: Path) -> Table:
    tenants = document.get("tenants")
    table = tenants.get(name) if isinstance(tenants, Table) else None
    if not isinstance(table, Table):
        raise InvalidInputError(f"no tenant {name!r} in {path}")
    return table


def _write(path: Path, document: tomlkit.TOMLDocument) -> bool:
    """Replace the file atomically with `document`, once it loads; True when the file was created.

    A new file is 0600; an existing one keeps its mode (and owner, when we may set it)."""
    existing = path.stat() if path.exists() else None
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write settings file {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tomlkit.dumps(document))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, stat.S_IMODE(existing.st_mode) if existing else 0o600)
        if existing is not None:
            try:
                os.chown(temporary, existing.st_uid, existing.st_gid)
            except PermissionError:
                pass  # not root: the file becomes ours, with its mode kept
        try:
            load_settings(temporary, {})
        except ConfigError as exc:
            raise ConfigError(exc.message.replace(temporary, str(path))) from None
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot write settings file {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return existing is None
