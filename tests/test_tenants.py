"""Tenants and API keys: the values, the key table, and `rlm tenants add|add-key|revoke|list`."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import InvalidInputError
from orchestrator.server.tenants import (
    HASH_PREFIX,
    TENANT_NAME,
    Tenant,
    TenantKeys,
    TenantQuotas,
    is_key_shaped,
    key_digest,
    new_api_key,
    parse_stored_digest,
)
from orchestrator.settings import load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "config.example.toml"


def _rlm(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    try:
        code = main(["tenants", *argv])
    except SystemExit as exit_:  # argparse's refusals
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def _add(capsys: pytest.CaptureFixture[str], config: Path, name: str = "acme") -> str:
    code, lines, err = _rlm(capsys, "add", name, "--config", str(config))
    assert code == 0, err
    return lines[-1]


def test_keys_are_random_prefixed_and_stored_as_sha256() -> None:
    """A key is rlm_ + 256 random bits (43 URL-safe characters); its stored form is its sha256."""
    key, other = new_api_key(), new_api_key()
    assert key != other and re.fullmatch(r"rlm_[A-Za-z0-9_-]{43}", key) and is_key_shaped(key)
    assert re.fullmatch(r"[0-9a-f]{64}", key_digest(key))
    assert parse_stored_digest(HASH_PREFIX + key_digest(key).upper()) == key_digest(key)
    for bad in ("md5:abc", "sha256:xyz", key):
        with pytest.raises(InvalidInputError):
            parse_stored_digest(bad)


def test_tenant_names_are_the_sandbox_managers_tenant_ids() -> None:
    """A tenant's name follows the sandbox manager's rule for tenant ids, since it labels its sandboxes."""
    from orchestrator.sandbox import manager

    assert TENANT_NAME.pattern == manager._TENANT.pattern
    for bad in ("", "-lead", "a b", "x" * 65, "é"):
        with pytest.raises(InvalidInputError, match="tenant name"):
            Tenant(bad)
    assert Tenant("a.b_c-1").name == "a.b_c-1"


def test_tenant_values_refuse_bad_digests_and_never_show_them() -> None:
    """Digests are 64 lowercase hex digits, none twice; repr(tenant) shows no digest."""
    digest = key_digest(new_api_key())
    with pytest.raises(InvalidInputError, match="64 lowercase hex"):
        Tenant("acme", ("abc",))
    with pytest.raises(InvalidInputError, match="must not repeat"):
        Tenant("acme", (digest, digest))
    assert digest not in repr(Tenant("acme", (digest,)))
    with pytest.raises(InvalidInputError, match="one tenant"):
        TenantKeys([Tenant("a", (digest,)), Tenant("b", (digest,))])


def test_add_creates_the_file_0600_and_prints_the_key_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`add` makes a missing file with mode 0600, holding the key's hash only, with default quotas;
    the key is the last line printed, and it resolves to the tenant once the settings load."""
    config = tmp_path / "rlm.toml"
    key = _add(capsys, config)
    assert is_key_shaped(key)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert key not in text and f"{HASH_PREFIX}{key_digest(key)}" in text
    (tenant,) = load_settings(config, {}).tenants
    assert tenant.name == "acme" and tenant.quotas == TenantQuotas()
    assert TenantKeys([tenant]).resolve(key) == tenant


def test_add_keeps_the_files_comments_and_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Adding a tenant to a commented file (the example) keeps every line of it, in order, and its mode."""
    config = tmp_path / "rlm.toml"
    original = EXAMPLE.read_text()
    config.write_text(original)
    config.chmod(0o640)
    _add(capsys, config, "first")
    _add(capsys, config, "second")
    text = config.read_text()
    assert text.startswith(original)
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert [t.name for t in load_settings(config, {}).tenants] == ["first", "second"]


def test_add_refuses_a_name_that_exists_or_is_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing name and a bad name are refused with exit status 2, and the file is left as it was."""
    config = tmp_path / "rlm.toml"
    _add(capsys, config)
    before = config.read_text()
    code, lines, err = _rlm(capsys, "add", "acme", "--config", str(config))
    assert (code, lines) == (2, []) and "already exists" in err
    code, _, err = _rlm(capsys, "add", "no spaces", "--config", str(config))
    assert code == 2 and "tenant name" in err
    assert config.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rlm.toml"]  # no temporary file left behind


def test_a_file_that_does_not_load_is_not_edited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A settings file with an unknown key is refused (exit 2, naming the key), never rewritten."""
    config = tmp_path / "rlm.toml"
    config.write_text("[server]\nlistn = 'x'\n")
    code, _, err = _rlm(capsys, "add", "acme", "--config", str(config))
    assert code == 2 and "server.listn" in err
    assert config.read_text() == "[server]\nlistn = 'x'\n"


def test_rotation_add_key_then_revoke_the_old_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """add-key gives a second key (both work); revoking by the printed key id, or by the key itself,
    removes exactly that one."""
    config = tmp_path / "rlm.toml"
    old = _add(capsys, config)
    code, lines, _ = _rlm(capsys, "add-key", "acme", "--config", str(config))
    new = lines[-1]
    assert code == 0 and is_key_shaped(new) and new != old
    keys = TenantKeys(load_settings(config, {}).tenants)
    assert keys.resolve(old) is not None and keys.resolve(new) is not None
    assert f"key id {HASH_PREFIX}{key_digest(new)[:12]} " in "\n".join(lines)  # the id add-key printed
    key_id = f"{HASH_PREFIX}{key_digest(old)[:12]}"
    code, lines, err = _rlm(capsys, "revoke", "acme", "--key-prefix", key_id, "--config", str(config))
    assert code == 0, err
    assert "next start" in lines[-1]
    keys = TenantKeys(load_settings(config, {}).tenants)
    assert keys.resolve(old) is None and keys.resolve(new) is not None
    code, _, _ = _rlm(capsys, "revoke", "acme", "--key-prefix", new, "--config", str(config))
    assert code == 0 and load_settings(config, {}).tenants[0].key_sha256 == ()


def test_revoke_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Revoke needs --key-prefix or --all; a short, unmatched or ambiguous prefix and an unknown tenant
    are bad input (exit 2)."""
    config = tmp_path / "rlm.toml"
    first = _add(capsys, config)
    cases = [
        (["revoke", "acme"], "--key-prefix --all is required"),
        (["revoke", "acme", "--key-prefix", "sha256:abc"], "at least 8 hex digits"),
        (["revoke", "acme", "--key-prefix", "sha256:" + "0" * 8 + "z"], "at least 8 hex digits"),
        (["revoke", "nobody", "--all"], "no tenant 'nobody'"),
        (["revoke", "acme", "--key-prefix", new_api_key()], "no key of tenant 'acme' matches"),
        (["add-key", "nobody"], "no tenant 'nobody'"),
    ]
    for argv, needle in cases:
        code, _, err = _rlm(capsys, *argv, "--config", str(config))
        assert code == 2 and needle in err, (argv, err)
    code, _, _ = _rlm(capsys, "revoke", "acme", "--all", "--config", str(config))
    assert code == 0 and TenantKeys(load_settings(config, {}).tenants).resolve(first) is None


def test_an_ambiguous_prefix_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A prefix matching two keys of the tenant revokes neither."""
    config = tmp_path / "rlm.toml"
    a, b = "sha256:" + "ab" * 32, "sha256:" + "ab" * 16 + "cd" * 16
    config.write_text(f'[tenants.acme]\nkeys = ["{a}", "{b}"]\n')
    code, _, err = _rlm(capsys, "revoke", "acme", "--key-prefix", "sha256:abababab", "--config", str(config))
    assert code == 2 and "2 keys" in err
    assert len(load_settings(config, {}).tenants[0].key_sha256) == 2


def test_list_shows_names_counts_and_quotas_never_a_key_or_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list` prints each tenant's name, key count and quotas, and no key nor any part of a hash."""
    config = tmp_path / "rlm.toml"
    key = _add(capsys, config)
    _add(capsys, config, "beta")
    code, lines, _ = _rlm(capsys, "list", "--config", str(config))
    assert code == 0 and [line.split(":")[0] for line in lines] == ["acme", "beta"]
    assert "1 key;" in lines[0] and "max_sandboxes=4" in lines[0] and "runtimes=runc,runsc" in lines[0]
    text = "\n".join(lines)
    assert key not in text and "sha256" not in text and key_digest(key)[:8] not in text
    code, lines, _ = _rlm(capsys, "list", "--config", str(EXAMPLE))
    assert code == 0 and lines == [f"no tenants in {EXAMPLE}"]


def test_the_file_comes_from_rlm_config_or_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config the file is $RLM_CONFIG; with neither, the command is bad input."""
    monkeypatch.delenv("RLM_CONFIG", raising=False)
    code, _, err = _rlm(capsys, "list")
    assert code == 2 and "--config FILE" in err
    monkeypatch.setenv("RLM_CONFIG", str(tmp_path / "env.toml"))
    code, _, _ = _rlm(capsys, "add", "acme")
    assert code == 0 and os.path.exists(tmp_path / "env.toml")
    code, _, err = _rlm(capsys, "list", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err
