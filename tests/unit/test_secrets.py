"""``resolve_secrets``: the worker's second rendering of a task's parameters."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from spane.errors import TaskError
from spane.expressions import compile_template
from spane.workers.secrets import (
    SECRETS_DIR_ENV,
    ChainSecretProvider,
    DirectorySecretProvider,
    EnvSecretProvider,
    MappingSecretProvider,
    default_secret_provider,
    is_secret_name,
    resolve_secrets,
)

PROVIDER = MappingSecretProvider({"TOKEN": "s3cr3t", "USER": "ann", "PORT": "8080"})


class _Recording:
    """A provider that records which names were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer ${ secrets.TOKEN }", "Bearer s3cr3t"),
        ("${ secrets.TOKEN }", "s3cr3t"),
        ('${ secrets["USER"] }:${ secrets.TOKEN }', "ann:s3cr3t"),
        ("${ int(secrets.PORT) }", 8080),
        ("${ secrets.USER.size() }", 3),
        ("${ [secrets.USER, secrets.TOKEN] }", ["ann", "s3cr3t"]),
        ("price: $${ input.total }", "price: ${ input.total }"),
        ("no template", "no template"),
        (42, 42),
        (None, None),
    ],
)
def test_resolve_table(value: Any, expected: Any) -> None:
    assert resolve_secrets(value, PROVIDER) == expected


def test_nested_dict_and_list() -> None:
    value: dict[str, Any] = {
        "url": "https://api.example/v1",
        "headers": {"Authorization": "Bearer ${ secrets.TOKEN }", "Accept": "json"},
        "json": {"users": ["${ secrets.USER }", "bob", {"port": "${ int(secrets.PORT) }"}]},
        "timeout": 5.0,
    }
    assert resolve_secrets(value, PROVIDER) == {
        "url": "https://api.example/v1",
        "headers": {"Authorization": "Bearer s3cr3t", "Accept": "json"},
        "json": {"users": ["ann", "bob", {"port": 8080}]},
        "timeout": 5.0,
    }
    assert value["headers"]["Authorization"] == "Bearer ${ secrets.TOKEN }"  # not mutated


def test_plain_values_are_returned_unchanged() -> None:
    value: dict[str, Any] = {"a": [1, "two", {"b": None}], "c": "text"}
    provider = _Recording({})
    assert resolve_secrets(value, provider) is value
    assert provider.asked == []


def test_unchanged_branches_keep_identity() -> None:
    static = {"x": [1, 2]}
    value = {"static": static, "token": "${ secrets.TOKEN }"}
    result = resolve_secrets(value, PROVIDER)
    assert result["static"] is static


def test_only_referenced_secrets_are_looked_up_once() -> None:
    provider = _Recording({"A": "1", "B": "2", "C": "3"})
    value = ["${ secrets.A }", "${ secrets.A }-${ secrets['B'] }", "${ secrets.A + 'secrets.C' }"]
    assert resolve_secrets(value, provider) == ["1", "1-2", "1secrets.C"]
    assert sorted(provider.asked) == ["A", "B"]


@pytest.mark.parametrize("text", ["${ secrets }", "${ 'B' in secrets }", "${ size(secrets) }"])
def test_reading_secrets_as_a_whole_is_refused(text: str) -> None:
    # Only named secrets enter the context; a whole-map read would need every secret.
    with pytest.raises(TaskError) as info:
        resolve_secrets(text, MappingSecretProvider({"A": "1", "B": "2"}))
    assert info.value.type == "InvalidSecretReference"
    assert info.value.non_retryable


def test_missing_secret_is_non_retryable() -> None:
    with pytest.raises(TaskError) as info:
        resolve_secrets({"h": "Bearer ${ secrets.MISSING }"}, PROVIDER)
    error = info.value
    assert error.type == "MissingSecret"
    assert error.non_retryable
    assert error.message == (
        "secret 'MISSING' is not set on this worker (looked in the secrets given in code)"
    )


def test_dynamic_secret_access_is_refused() -> None:
    with pytest.raises(TaskError) as info:
        resolve_secrets("${ secrets[secrets.USER] }", PROVIDER)
    assert info.value.non_retryable
    assert info.value.type == "InvalidSecretReference"


def test_other_roots_are_refused() -> None:
    with pytest.raises(TaskError, match="only secrets") as info:
        resolve_secrets("${ input.total }", PROVIDER)
    assert info.value.non_retryable


def test_evaluation_error_does_not_leak_the_value() -> None:
    with pytest.raises(TaskError) as info:
        resolve_secrets("${ int(secrets.TOKEN) }", PROVIDER)
    error = info.value
    assert error.type == "ExpressionEvaluationError"
    assert "s3cr3t" not in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_orchestrator_deferred_output_round_trips() -> None:
    # The orchestrator renders with defer={"secrets"}; the worker renders the rest.
    definition = {
        "headers": {"Authorization": "Bearer ${ secrets.TOKEN }"},
        "json": {"note": "${ input.note }", "total": "${ input.total }"},
    }
    context = {"input": {"note": "literal ${ secrets.TOKEN } from data", "total": 3}}
    deferred = compile_template(definition).render(context, defer=frozenset({"secrets"}))
    assert resolve_secrets(deferred, PROVIDER) == {
        "headers": {"Authorization": "Bearer s3cr3t"},
        "json": {"note": "literal ${ secrets.TOKEN } from data", "total": 3},
    }


def test_env_provider_reads_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_SECRET_TOKEN", "from-env")
    provider = EnvSecretProvider(prefix="SPANE_SECRET_")
    assert provider.get("TOKEN") == "from-env"
    assert provider.get("ABSENT") is None
    assert resolve_secrets("${ secrets.TOKEN }", provider) == "from-env"


def test_mapping_provider_repr_hides_values() -> None:
    assert "s3cr3t" not in repr(PROVIDER)


# ------------------------------------------------------------------ explicit sources only


def test_env_provider_defaults_to_the_secret_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_SECRET_TOKEN", "from-env")
    monkeypatch.setenv("TOKEN", "unprefixed")
    assert EnvSecretProvider().get("TOKEN") == "from-env"
    monkeypatch.delenv("SPANE_SECRET_TOKEN")
    assert EnvSecretProvider().get("TOKEN") is None  # never the unprefixed variable


@pytest.mark.parametrize(
    "name", ["SPANE_AMQP_URL", "AMQP_URL", "SPANE_REDIS_URL", "PATH", "HOME", "amqp_url"]
)
def test_spane_settings_and_other_variables_are_unreachable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    monkeypatch.setenv("SPANE_AMQP_URL", "amqp://guest:hunter2@broker:5672/")
    monkeypatch.setenv("SPANE_REDIS_URL", "redis://:hunter2@redis:6379/0")
    monkeypatch.setenv("AMQP_URL", "amqp://guest:hunter2@broker:5672/")
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    provider = default_secret_provider()
    assert provider.get(name) is None
    with pytest.raises(TaskError) as info:
        resolve_secrets("${ secrets." + name + " }", provider)
    assert info.value.type == "MissingSecret"
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("prefix", ["", "S", "SPANE", "SPANE_", "spane_", "SPANE_AMQP_", "A B"])
def test_prefixes_reaching_other_variables_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        EnvSecretProvider(prefix=prefix)


def test_a_prefix_of_ones_own_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_SECRET_KEY", "k")
    assert EnvSecretProvider(prefix="MYAPP_SECRET_").get("KEY") == "k"
    assert EnvSecretProvider(prefix="SPANE_SECRET_TEAM_A_").get("KEY") is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../etc/passwd",
        "a/b",
        ".hidden",
        "..data",
        "-x",
        "with space",
        "tökén",
        "a\nb",
        "x" * 300,
    ],
)
def test_invalid_secret_names_are_refused(name: str, tmp_path: Path) -> None:
    assert not is_secret_name(name)
    (tmp_path / "ok").write_text("v")
    assert DirectorySecretProvider(tmp_path).get(name) is None
    assert EnvSecretProvider().get(name) is None
    with pytest.raises(TaskError) as info:
        resolve_secrets('${ secrets["' + name.replace("\\", "") + '"] }', MappingSecretProvider({}))
    assert info.value.type in {"InvalidSecretName", "ExpressionSyntaxError"}
    assert info.value.non_retryable


@pytest.mark.parametrize("name", ["TOKEN", "api-key", "tls.crt", "_x", "A1"])
def test_valid_secret_names(name: str) -> None:
    assert is_secret_name(name)


def test_invalid_name_error_type() -> None:
    with pytest.raises(TaskError) as info:
        resolve_secrets('${ secrets[".hidden"] }', MappingSecretProvider({".hidden": "x"}))
    assert info.value.type == "InvalidSecretName"


def test_directory_provider_reads_one_file_per_secret(tmp_path: Path) -> None:
    (tmp_path / "TOKEN").write_text("s3cr3t")
    (tmp_path / "tls.crt").write_text("-----BEGIN-----\n")
    (tmp_path / "sub").mkdir()
    provider = DirectorySecretProvider(tmp_path)
    assert provider.get("TOKEN") == "s3cr3t"
    assert provider.get("tls.crt") == "-----BEGIN-----\n"  # exactly as stored
    assert provider.get("ABSENT") is None
    assert provider.get("sub") is None  # not a regular file
    assert resolve_secrets("Bearer ${ secrets.TOKEN }", provider) == "Bearer s3cr3t"
    assert resolve_secrets('${ secrets["tls.crt"] }', provider) == "-----BEGIN-----\n"
    assert "s3cr3t" not in repr(provider)


def test_directory_provider_follows_kubernetes_links_but_not_out_of_the_directory(
    tmp_path: Path,
) -> None:
    mounted = tmp_path / "mounted"
    data = mounted / "..2024_01_01"
    data.mkdir(parents=True)
    (data / "TOKEN").write_text("k8s")
    os.symlink("..2024_01_01", mounted / "..data")
    os.symlink("..data/TOKEN", mounted / "TOKEN")
    outside = tmp_path / "outside"
    outside.write_text("not a secret")
    os.symlink(outside, mounted / "ESCAPE")
    provider = DirectorySecretProvider(mounted)
    assert provider.get("TOKEN") == "k8s"
    assert provider.get("ESCAPE") is None


def test_directory_provider_refuses_binary_and_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "BIN").write_bytes(b"\xff\xfe")
    with pytest.raises(TaskError) as info:
        DirectorySecretProvider(tmp_path).get("BIN")
    assert info.value.type == "InvalidSecret"
    assert DirectorySecretProvider(tmp_path / "nope").get("TOKEN") is None


def test_default_provider_reads_prefix_then_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "FROM_FILE").write_text("file")
    (tmp_path / "BOTH").write_text("file")
    monkeypatch.setenv("SPANE_SECRET_BOTH", "env")
    monkeypatch.delenv(SECRETS_DIR_ENV, raising=False)
    assert isinstance(default_secret_provider(), EnvSecretProvider)
    assert default_secret_provider().get("FROM_FILE") is None
    provider = default_secret_provider({SECRETS_DIR_ENV: str(tmp_path)})
    assert isinstance(provider, ChainSecretProvider)
    assert provider.get("FROM_FILE") == "file"
    assert provider.get("BOTH") == "env"
    with pytest.raises(TaskError) as info:
        resolve_secrets("${ secrets.NOPE }", provider)
    assert "$SPANE_SECRET_NOPE" in str(info.value)
    assert str(tmp_path / "NOPE") in str(info.value)


def test_the_worker_default_cannot_read_the_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defect: ``${ secrets.SPANE_AMQP_URL }`` returned the broker URL with its password."""
    from spane.bus.memory import MemoryBus
    from spane.state.memory import MemoryStateStore
    from spane.workers.runtime import Worker

    monkeypatch.setenv("SPANE_AMQP_URL", "amqp://guest:hunter2@broker:5672/")
    worker = Worker(MemoryBus(), MemoryStateStore(), pool="function")
    for text in ("${ secrets.SPANE_AMQP_URL }", '${ secrets["SPANE_AMQP_URL"] }'):
        with pytest.raises(TaskError) as info:
            resolve_secrets(text, worker.secrets)
        assert info.value.type == "MissingSecret"
        assert "hunter2" not in str(info.value)
