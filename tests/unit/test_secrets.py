"""``resolve_secrets``: the worker's second rendering of a task's parameters."""

from __future__ import annotations

from typing import Any

import pytest

from spane.errors import TaskError
from spane.expressions import compile_template
from spane.workers.secrets import EnvSecretProvider, MappingSecretProvider, resolve_secrets

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
    assert error.message == "secret 'MISSING' is not set in this worker's environment"


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
