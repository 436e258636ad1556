"""The order API's door without a database: what it refuses (4xx, the field
at fault) never reaches storage, and a database error is 503 when the
database is unavailable (messaging.unavailable.unavailable), 500 only for a bug.
The app is built with settings pointing nowhere; nothing here connects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider

from messaging.asyncapi import placeholder_settings
from messaging.unavailable import unavailable
from order_service.entrypoints import http
from order_service.service_layer import handlers
from order_service.settings import OrderServiceSettings

ORDER = {
    "customer_id": "c1",
    "customer_email": "c1@example.com",
    "currency": "EUR",
    "items": [{"sku": "s1", "quantity": 1, "unit_price": "12.00"}],
}


@pytest.fixture
def client() -> TestClient:
    # The placeholder logins, on ports where nothing listens.
    nowhere = {**placeholder_settings(), "database_port": 1, "rabbitmq_port": 1}
    settings = OrderServiceSettings.model_validate({**nowhere, "http_max_body_bytes": 4096})
    # No lifespan: the points client would try to connect.
    return TestClient(http.create_app(settings, TracerProvider()), raise_server_exceptions=False)


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


def test_a_nul_character_is_refused_in_the_body_the_query_and_the_path(
    client: TestClient,
) -> None:
    body = client.post("/orders", json={**ORDER, "customer_id": "a\u0000b"})
    assert (body.status_code, fields(body)) == (422, ["customer_id"])
    sku = client.post("/orders", json={**ORDER, "items": [{**ORDER["items"][0], "sku": "\0"}]})  # type: ignore[dict-item]
    assert (sku.status_code, fields(sku)) == (422, ["items[0].sku"])
    query = client.get("/orders", params={"customer_id": "a\x00b"})
    assert (query.status_code, fields(query)) == (422, ["customer_id"])
    path = client.get("/customers/a%00b/summary")
    assert (path.status_code, fields(path)) == (422, ["customer_id"])


def test_a_total_beyond_the_column_is_refused(client: TestClient) -> None:
    item = {"sku": "s1", "quantity": 1000, "unit_price": "9999999999.99"}
    response = client.post("/orders", json={**ORDER, "items": [item]})
    assert (response.status_code, fields(response)) == (422, ["items"])
    assert "exceeds 999999999999.99" in response.json()["errors"][0]["message"]


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client: TestClient) -> None:
    big = json.dumps({**ORDER, "customer_id": "x" * 5000})
    declared = client.post("/orders", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post(
        "/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def starting_up() -> sqlalchemy.exc.DBAPIError:
    cause = asyncpg.CannotConnectNowError("the database system is not yet accepting connections")
    error = sqlalchemy.exc.DBAPIError("connect", None, cause)
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (starting_up(), 503),
        (ConnectionRefusedError(111, "refused"), 503),
        (sqlalchemy.exc.TimeoutError("QueuePool limit reached"), 503),
        (sqlalchemy.exc.ProgrammingError("insert", None, Exception("syntax")), 500),
    ],
    ids=["starting", "refused", "pool-timeout", "bug"],
)
def test_a_database_error_is_503_when_unavailable_and_500_only_for_a_bug(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int
) -> None:
    async def failing(*_: Any, **__: Any) -> Any:
        raise error

    monkeypatch.setattr(handlers, "place_order", failing)
    response = client.post("/orders", json=ORDER)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert ("Retry-After" in response.headers) == (status == 503)


def test_one_definition_of_unavailable() -> None:
    assert unavailable(starting_up())
    assert unavailable(asyncpg.AdminShutdownError("terminating connection"))
    assert not unavailable(sqlalchemy.exc.IntegrityError("insert", None, Exception("dup")))
    assert not unavailable(ValueError("bad"))
