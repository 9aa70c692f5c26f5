"""Property test of /api/v1 against its own OpenAPI document: whatever the parameters, the
server answers without a 5xx (a hypothesis-driven equivalent of schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testsupport.web import SECRET, WebApp, api_token, seed, serve, submit


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebApp, str, dict[str, Any]]]:
    from db.engine import make_engine
    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'kneeguard.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with serve(url, secret_key=SECRET) as app:
        seed(app.engine)
        submit(app, "a1", "9", "swelling")
        submit(app, "b1", "9", "locking")
        token = api_token(app.engine, "c1")
        with app.client() as client:
            document = client.get("/openapi.json").json()
        yield app, token, document


def value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the schema's type, plus values that break it."""
    anything = st.one_of(
        st.text(max_size=30),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.sampled_from(["", "a1", "b1", "../a1", "%00", "🦵", "a" * 300, "1e309", "null"]),
    )
    options = schema.get("anyOf", [schema])
    typed: list[st.SearchStrategy[Any]] = []
    for option in options:
        if "enum" in option:
            typed.append(st.sampled_from(option["enum"]))
        elif option.get("type") == "integer":
            low, high = option.get("minimum", -(2**63)), option.get("maximum", 2**63)
            typed.append(st.integers(min_value=low - 5, max_value=high + 5).map(str))
    return st.one_of(anything, *typed)


def operations(document: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [
        (method.upper(), path, spec.get("parameters", []))
        for path, item in document["paths"].items()
        if path.startswith("/api/v1")
        for method, spec in item.items()
    ]


@st.composite
def requests(draw: st.DrawFn, document: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    method, path, parameters = draw(st.sampled_from(operations(document)))
    query: dict[str, str] = {}
    for parameter in parameters:
        value = draw(value_for(parameter.get("schema", {})))
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", quote(str(value), safe="") or "x")
        elif parameter["in"] == "query" and (parameter.get("required") or draw(st.booleans())):
            query[parameter["name"]] = str(value)
    return method, path, query


def test_the_document_describes_every_api_route(api: tuple[WebApp, str, dict[str, Any]]) -> None:
    _, _, document = api
    assert {(m, p) for m, p, _ in operations(document)} == {
        ("GET", "/api/v1/athletes"),
        ("GET", "/api/v1/athletes/{athlete_id}"),
        ("GET", "/api/v1/athletes/{athlete_id}/runs"),
        ("GET", "/api/v1/athletes/{athlete_id}/checkins"),
        ("GET", "/api/v1/athletes/{athlete_id}/export.csv"),
        ("GET", "/api/v1/alerts"),
        ("POST", "/api/v1/alerts/{alert_id}/acknowledge"),
    }
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_no_request_the_document_allows_or_breaks_gets_a_5xx(
    api: tuple[WebApp, str, dict[str, Any]],
) -> None:
    app, token, document = api
    with app.client() as client:

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(request=requests(document), authorised=st.booleans())
        def check(request: tuple[str, str, dict[str, str]], authorised: bool) -> None:
            method, path, query = request
            headers = {"Authorization": f"Bearer {token}"} if authorised else {}
            reply = client.request(method, path, params=query, headers=headers)
            assert reply.status_code < 500, (method, path, query, reply.text[:300])
            if not authorised:
                assert reply.status_code in (401, 404, 422)
            if reply.status_code == 200 and path.endswith("/athletes"):
                assert {a["id"] for a in reply.json()} <= {"a1", "a2"}

        check()
    assert isinstance(client, httpx.Client)
