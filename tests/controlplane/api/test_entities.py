"""Kong-style CRUD on services, routes, upstreams and consumers: every change is a config version.

The ``api`` fixture starts from the demo config (version 1): service ``demo`` with routes
``demo`` and ``orders``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from controlplane.db.models import GatewayConfigVersion
from controlplane.errors import Conflict
from controlplane.services import config as config_service
from controlplane.state import ControlPlane
from dataplane.gateway_config import GatewayConfig

DEMO_ID = "43e4a642-1e68-5fa3-9234-90e65c7cd772"  # entity_id("service", "demo")


async def _version(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/v1/config")
    return int(response.headers["x-config-version"])


async def _names(api: httpx.AsyncClient, collection: str) -> list[str]:
    response = await api.get(f"/api/v1/{collection}")
    key = "username" if collection == "consumers" else "name"
    return [entity[key] for entity in response.json()["data"]]


def _assert_invalid(response: httpx.Response, loc: list[Any], fragment: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["loc"] == loc, body
    assert fragment in body["message"], body


# -- services ----------------------------------------------------------------------------------


async def test_service_round_trip(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/api/v1/services",
        json={"name": "billing", "url": "https://billing.internal:8443/v2", "tags": ["team-a"]},
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-config-version"] == "2"
    service = created.json()
    uuid.UUID(service["id"])
    assert service | {"id": "x"} == {
        "id": "x",
        "name": "billing",
        "protocol": "https",
        "host": "billing.internal",
        "port": 8443,
        "path": "/v2",
        "retries": 5,
        "connect_timeout": 60000,
        "write_timeout": 60000,
        "read_timeout": 60000,
        "tls_verify": False,
        "enabled": True,
        "tags": ["team-a"],
    }
    by_name = await api.get("/api/v1/services/billing")
    by_id = await api.get(f"/api/v1/services/{service['id']}")
    assert by_name.json() == by_id.json() == service
    assert by_name.headers["x-config-version"] == "2"

    patched = await api.patch("/api/v1/services/billing", json={"retries": 2, "read_timeout": 5})
    assert patched.status_code == 200, patched.text
    assert patched.headers["x-config-version"] == "3"
    assert (patched.json()["retries"], patched.json()["read_timeout"]) == (2, 5)
    assert patched.json()["host"] == "billing.internal"

    replaced = await api.put("/api/v1/services/billing", json={"host": "b2", "port": 81})
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["x-config-version"] == "4"
    body = replaced.json()
    assert (body["id"], body["name"], body["host"], body["port"]) == (
        service["id"],
        "billing",
        "b2",
        81,
    )
    assert body["retries"] == 5  # PUT replaces: omitted fields take their defaults
    assert body["tags"] == []

    deleted = await api.delete(f"/api/v1/services/{service['id']}")
    assert deleted.status_code == 204
    assert deleted.headers["x-config-version"] == "5"
    assert (await api.get("/api/v1/services/billing")).status_code == 404
    assert await _version(api) == 5


async def test_put_creates_by_name_or_by_uuid(api: httpx.AsyncClient) -> None:
    by_name = await api.put("/api/v1/services/inventory", json={"url": "http://inv:8080"})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["name"] == "inventory"
    uuid.UUID(by_name.json()["id"])
    ident = str(uuid.uuid4())
    by_id = await api.put(f"/api/v1/services/{ident}", json={"name": "stock", "host": "stock"})
    assert by_id.status_code == 200, by_id.text
    assert (by_id.json()["id"], by_id.json()["name"]) == (ident, "stock")
    assert await _names(api, "services") == ["demo", "inventory", "stock"]


async def test_put_by_id_may_rename_put_by_name_may_not(api: httpx.AsyncClient) -> None:
    renamed = await api.put(f"/api/v1/services/{DEMO_ID}", json={"name": "shop", "host": "h"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "shop"
    version = await _version(api)
    refused = await api.put("/api/v1/services/shop", json={"name": "other", "host": "h"})
    _assert_invalid(refused, ["body", "name"], "does not match the URL")
    assert await _version(api) == version


async def test_patch_url_replaces_every_part_of_it(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/services", json={"name": "s", "url": "https://s:8443/v1"})
    patched = await api.patch("/api/v1/services/s", json={"url": "http://t"})
    body = patched.json()
    assert (body["protocol"], body["host"], body["port"], body["path"]) == ("http", "t", 80, None)


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"name": "x", "url": "ftp://x"}, ["body"], "is not http(s)://host"),
        ({"name": "x", "host": "x", "port": 0}, ["body", "port"], "greater than or equal to 1"),
        ({"name": "x", "host": "x", "retries": -1}, ["body", "retries"], "greater than"),
        ({"name": "x", "host": "x", "connect_timeout": 0}, ["body", "connect_timeout"], "greater"),
        ({"name": "x", "host": "x", "protocol": "grpc"}, ["body", "protocol"], "'http' or 'https'"),
        ({"name": "x", "host": "a/b"}, ["body", "host"], "must be a host name"),
        ({"name": "x"}, ["body", "host"], "Field required"),
        ({"host": "x"}, ["body", "name"], "Field required"),
        ({"name": "bad name", "host": "x"}, ["body", "name"], "may contain only letters"),
        ({"name": "demo", "host": "x"}, ["body", "name"], "a service with this name exists"),
        ({"id": DEMO_ID, "name": "x", "host": "x"}, ["body", "id"], "with this id already"),
        ({"name": "x", "host": "x", "colour": "red"}, ["body", "colour"], "Extra inputs"),
        ({"name": "x", "host": "x", "tags": "a"}, ["body", "tags"], "valid tuple"),
    ],
)
async def test_bad_service_is_422_and_stores_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = await api.post("/api/v1/services", json=body)
    _assert_invalid(response, loc, fragment)
    assert await _version(api) == 1
    assert await _names(api, "services") == ["demo"]


async def test_malformed_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/services", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["loc"][0] == "body"
    assert "malformed JSON" in body["message"]
    not_an_object = await api.post("/api/v1/routes", json=["demo"])
    _assert_invalid(not_an_object, ["body"], "valid dictionary")
    assert await _version(api) == 1


async def test_patch_cannot_change_the_id_or_take_a_used_name(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/services", json={"name": "other", "host": "o"})
    version = await _version(api)
    new_id = await api.patch("/api/v1/services/demo", json={"id": str(uuid.uuid4())})
    _assert_invalid(new_id, ["body", "id"], "cannot change")
    taken = await api.patch("/api/v1/services/other", json={"name": "demo"})
    _assert_invalid(taken, ["body", "name"], "service 'demo': name: a service with this name")
    assert await _version(api) == version


async def test_delete_of_a_service_routes_use_is_refused(api: httpx.AsyncClient) -> None:
    refused = await api.delete("/api/v1/services/demo")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert "service 'demo' is used by routes 'demo', 'orders'" in body["message"]
    assert [error["loc"] for error in body["errors"]] == [
        ["config", "routes", 0, "service"],
        ["config", "routes", 1, "service"],
    ]
    assert await _version(api) == 1
    for route in ("demo", "orders"):
        assert (await api.delete(f"/api/v1/routes/{route}")).status_code == 204
    deleted = await api.delete("/api/v1/services/demo")
    assert deleted.status_code == 204
    assert deleted.headers["x-config-version"] == "4"


async def test_list_filters_by_tags_and_pages(api: httpx.AsyncClient) -> None:
    for name, tags in (("a", ["x", "y"]), ("b", ["x"]), ("c", ["y"]), ("d", [])):
        await api.post("/api/v1/services", json={"name": name, "host": name, "tags": tags})

    async def names(query: str) -> list[str]:
        response = await api.get(f"/api/v1/services?{query}")
        assert response.status_code == 200, response.text
        return [entity["name"] for entity in response.json()["data"]]

    assert await names("tags=x,y") == ["a"]
    assert await names("tags=x/y") == ["a", "b", "c"]
    assert await names("tags=x") == ["a", "b"]
    mixed = await api.get("/api/v1/services?tags=x,y/z")
    _assert_invalid(mixed, ["query", "tags"], "not both")

    seen: list[str] = []
    path: str | None = "/api/v1/services?size=2"
    while path is not None:
        page = (await api.get(path)).json()
        assert len(page["data"]) <= 2
        seen += [entity["name"] for entity in page["data"]]
        path = page["next"]
    assert seen == ["demo", "a", "b", "c", "d"]
    too_big = await api.get("/api/v1/services?size=1001")
    _assert_invalid(too_big, ["query", "size"], "less than or equal to 1000")


# -- routes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [{"id": DEMO_ID}, {"name": "demo"}, "demo", DEMO_ID],
    ids=["by-id", "by-name", "plain-name", "plain-id"],
)
async def test_route_references_its_service_by_name_or_id(
    api: httpx.AsyncClient, reference: Any
) -> None:
    created = await api.post(
        "/api/v1/routes", json={"name": "new", "paths": ["/new"], "service": reference}
    )
    assert created.status_code == 201, created.text
    assert created.json()["service"] == {"id": DEMO_ID}


async def test_route_round_trip(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/api/v1/services/demo/routes",
        json={"name": "checkout", "paths": ["/checkout"], "methods": ["POST"]},
    )
    assert created.status_code == 201, created.text
    route = created.json()
    assert route | {"id": "x"} == {
        "id": "x",
        "name": "checkout",
        "service": {"id": DEMO_ID},
        "protocols": ["http", "https"],
        "methods": ["POST"],
        "hosts": [],
        "paths": ["/checkout"],
        "headers": {},
        "strip_path": True,
        "preserve_host": False,
        "regex_priority": 0,
        "tags": [],
    }
    listed = await api.get("/api/v1/services/demo/routes")
    assert [r["name"] for r in listed.json()["data"]] == ["demo", "orders", "checkout"]

    patched = await api.patch(
        "/api/v1/routes/checkout",
        json={"hosts": ["*.example.com"], "headers": {"X-Version": ["2"]}, "strip_path": False},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["headers"] == {"x-version": ["2"]}
    assert patched.json()["methods"] == ["POST"]

    await api.post("/api/v1/services", json={"name": "other", "host": "o"})
    moved = await api.patch("/api/v1/routes/checkout", json={"service": {"name": "other"}})
    other_id = (await api.get("/api/v1/services/other")).json()["id"]
    assert moved.json()["service"] == {"id": other_id}

    # What GET returns is valid input: putting it back changes nothing.
    current = (await api.get(f"/api/v1/routes/{route['id']}")).json()
    version = await _version(api)
    same = await api.put(f"/api/v1/routes/{route['id']}", json=current)
    assert same.status_code == 200, same.text
    assert same.json() == current
    assert same.headers["x-config-version"] == str(version)

    assert (await api.delete("/api/v1/routes/checkout")).status_code == 204
    assert (await api.get("/api/v1/routes/checkout")).status_code == 404


@pytest.mark.parametrize(
    ("change", "loc", "fragment"),
    [
        ({"paths": ["/ok", "nope"]}, ["body", "paths", 1], "path 'nope' must start with '/'"),
        ({"paths": ["~/a(b"]}, ["body", "paths", 0], "invalid regex"),
        ({"hosts": ["a.*.com"]}, ["body", "hosts", 0], "wildcard must be the leftmost"),
        ({"hosts": ["bad host"]}, ["body", "hosts", 0], "not a valid host name"),
        ({"methods": ["GET", "get"]}, ["body", "methods", 1], "upper-case"),
        ({"headers": {"Host": ["x"]}}, ["body", "headers"], "with 'hosts'"),
        ({"protocols": ["tcp"]}, ["body", "protocols", 0], "'http' or 'https'"),
        ({"paths": []}, ["body"], "at least one of methods, hosts, paths or headers"),
        ({"service": "missing"}, ["body", "service"], "unknown service 'missing'"),
        ({"service": {"name": "missing"}}, ["body", "service"], "unknown service 'missing'"),
        ({"service": {"host": "x"}}, ["body", "service"], "a reference is"),
        ({"service": 7}, ["body", "service"], "a reference is an ID or a name"),
        ({"service": None}, ["body", "service"], "valid string"),
        ({"name": "orders"}, ["body", "name"], "a route with this name exists"),
        ({"strip_path": "maybe"}, ["body", "strip_path"], "valid boolean"),
    ],
)
async def test_bad_route_is_422_and_stores_nothing(
    api: httpx.AsyncClient, change: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    body = {"name": "new", "paths": ["/new"], "service": "demo", **change}
    response = await api.post("/api/v1/routes", json=body)
    _assert_invalid(response, loc, fragment)
    assert response.json()["message"].startswith("route ")
    assert await _version(api) == 1
    assert await _names(api, "routes") == ["demo", "orders"]


async def test_nested_route_is_bound_to_the_service_in_the_url(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/services/demo/routes",
        json={"name": "bound", "paths": ["/bound"], "service": {"name": "elsewhere"}},
    )
    assert response.status_code == 201, response.text
    assert response.json()["service"] == {"id": DEMO_ID}


async def test_route_needs_a_service(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/routes", json={"name": "lost", "paths": ["/lost"]})
    _assert_invalid(response, ["body", "service"], "Field required")


# -- upstreams and targets ---------------------------------------------------------------------


async def test_upstream_and_targets_round_trip(api: httpx.AsyncClient) -> None:
    created = await api.post(
        "/api/v1/upstreams",
        json={
            "name": "pool",
            "targets": [{"target": "10.0.0.1:80"}],
            "healthchecks": {"passive": {"timeouts": 5}},
        },
    )
    assert created.status_code == 201, created.text
    upstream = created.json()
    assert upstream["targets"] == [{"target": "10.0.0.1:80", "weight": 100}]
    assert upstream["healthchecks"]["passive"]["tcp_failures"] == 2

    added = await api.post(
        "/api/v1/upstreams/pool/targets", json={"target": "[::1]:8080", "weight": 5}
    )
    assert added.status_code == 201, added.text
    target = added.json()
    assert target | {"id": "x"} == {
        "id": "x",
        "target": "[::1]:8080",
        "weight": 5,
        "upstream": {"id": upstream["id"]},
    }
    listed = (await api.get(f"/api/v1/upstreams/{upstream['id']}/targets")).json()
    assert [t["target"] for t in listed["data"]] == ["10.0.0.1:80", "[::1]:8080"]
    assert listed["data"][1] == target

    # PATCH merges records field by field; PUT without targets keeps them (they are children).
    patched = await api.patch(
        "/api/v1/upstreams/pool", json={"healthchecks": {"passive": {"tcp_failures": 7}}}
    )
    passive = patched.json()["healthchecks"]["passive"]
    assert (passive["tcp_failures"], passive["timeouts"]) == (7, 5)
    replaced = await api.put("/api/v1/upstreams/pool", json={"tags": ["lb"]})
    assert replaced.status_code == 200, replaced.text
    assert len(replaced.json()["targets"]) == 2
    assert replaced.json()["healthchecks"]["passive"]["tcp_failures"] == 2

    by_address = await api.delete("/api/v1/upstreams/pool/targets/10.0.0.1:80")
    assert by_address.status_code == 204
    by_id = await api.delete(f"/api/v1/upstreams/pool/targets/{target['id']}")
    assert by_id.status_code == 204
    assert (await api.get("/api/v1/upstreams/pool")).json()["targets"] == []
    gone = await api.delete("/api/v1/upstreams/pool/targets/10.0.0.1:80")
    assert gone.status_code == 404
    assert (await api.delete("/api/v1/upstreams/pool")).status_code == 204
    assert await _names(api, "upstreams") == []


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        ({"target": "nohost"}, ["body", "target"], "must be host:port"),
        ({"target": "h:99999"}, ["body", "target"], "must be host:port"),
        ({"target": "h:1", "weight": 70000}, ["body", "weight"], "less than or equal to 65535"),
        ({"target": "10.0.0.1:80"}, ["body", "target"], "already has '10.0.0.1:80'"),
        ({"weight": 5}, ["body", "target"], "Field required"),
    ],
)
async def test_bad_target_is_422(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    await api.post(
        "/api/v1/upstreams", json={"name": "pool", "targets": [{"target": "10.0.0.1:80"}]}
    )
    version = await _version(api)
    response = await api.post("/api/v1/upstreams/pool/targets", json=body)
    _assert_invalid(response, loc, fragment)
    assert await _version(api) == version


async def test_bad_upstream_is_422(api: httpx.AsyncClient) -> None:
    wrong = await api.post("/api/v1/upstreams", json={"name": "p", "algorithm": "least-conn"})
    _assert_invalid(wrong, ["body", "algorithm"], "round-robin")
    bad_target = await api.post(
        "/api/v1/upstreams", json={"name": "p", "targets": [{"target": "ok:1"}, {"target": "x"}]}
    )
    _assert_invalid(bad_target, ["body", "targets", 1, "target"], "must be host:port")
    assert await _version(api) == 1


# -- consumers and key-auth credentials --------------------------------------------------------


async def test_consumer_and_credentials_round_trip(api: httpx.AsyncClient) -> None:
    created = await api.post("/api/v1/consumers", json={"username": "alice", "custom_id": "a-1"})
    assert created.status_code == 201, created.text
    consumer = created.json()
    assert consumer["keyauth_credentials"] == []

    chosen = await api.post("/api/v1/consumers/alice/key-auth", json={"key": "s3cret"})
    assert chosen.status_code == 201, chosen.text
    assert chosen.json() | {"id": "x"} == {
        "id": "x",
        "key": "s3cret",
        "consumer": {"id": consumer["id"]},
    }
    generated = await api.post(f"/api/v1/consumers/{consumer['id']}/key-auth")
    assert generated.status_code == 201, generated.text
    key = generated.json()["key"]
    assert len(key) == 32
    listed = (await api.get("/api/v1/consumers/alice/key-auth")).json()["data"]
    assert [cred["key"] for cred in listed] == ["s3cret", key]

    renamed = await api.patch("/api/v1/consumers/alice", json={"username": "alicia"})
    assert renamed.json()["username"] == "alicia"
    replaced = await api.put("/api/v1/consumers/alicia", json={"custom_id": "a-2"})
    assert replaced.json()["custom_id"] == "a-2"
    assert len(replaced.json()["keyauth_credentials"]) == 2  # PUT keeps the credentials

    assert (await api.delete("/api/v1/consumers/alicia/key-auth/s3cret")).status_code == 204
    by_id = await api.delete(f"/api/v1/consumers/alicia/key-auth/{generated.json()['id']}")
    assert by_id.status_code == 204
    assert (await api.get("/api/v1/consumers/alicia/key-auth")).json()["data"] == []
    assert (await api.delete("/api/v1/consumers/alicia/key-auth/s3cret")).status_code == 404
    assert (await api.delete("/api/v1/consumers/alicia")).status_code == 204
    assert await _names(api, "consumers") == []


async def test_bad_consumer_and_credential_are_422(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/consumers", json={"username": "alice"})
    await api.post("/api/v1/consumers", json={"username": "bob"})
    await api.post("/api/v1/consumers/alice/key-auth", json={"key": "k1"})
    version = await _version(api)
    taken = await api.post("/api/v1/consumers/bob/key-auth", json={"key": "k1"})
    _assert_invalid(taken, ["body", "key"], "already in use")
    empty = await api.post("/api/v1/consumers/bob/key-auth", json={"key": ""})
    _assert_invalid(empty, ["body", "key"], "at least 1 character")
    extra = await api.post("/api/v1/consumers/bob/key-auth", json={"key": "k2", "ttl": 5})
    _assert_invalid(extra, ["body", "ttl"], "Extra inputs")
    duplicate = await api.post("/api/v1/consumers", json={"username": "bob"})
    _assert_invalid(duplicate, ["body", "username"], "a consumer with this username exists")
    assert await _version(api) == version


# -- not found, versions, declarative view, push ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/services/nope"),
        ("PATCH", "/api/v1/services/nope"),
        ("DELETE", "/api/v1/services/nope"),
        ("GET", "/api/v1/services/nope/routes"),
        ("POST", "/api/v1/services/nope/routes"),
        ("GET", "/api/v1/services/nope/plugins"),
        ("GET", "/api/v1/routes/nope"),
        ("PATCH", "/api/v1/routes/nope"),
        ("DELETE", "/api/v1/routes/nope"),
        ("GET", "/api/v1/routes/nope/plugins"),
        ("GET", "/api/v1/upstreams/nope"),
        ("DELETE", "/api/v1/upstreams/nope"),
        ("GET", "/api/v1/upstreams/nope/targets"),
        ("POST", "/api/v1/upstreams/nope/targets"),
        ("DELETE", "/api/v1/upstreams/nope/targets/h:1"),
        ("GET", "/api/v1/consumers/nope"),
        ("DELETE", "/api/v1/consumers/nope"),
        ("GET", "/api/v1/consumers/nope/key-auth"),
        ("POST", "/api/v1/consumers/nope/key-auth"),
        ("DELETE", "/api/v1/consumers/nope/key-auth/k"),
        ("GET", "/api/v1/plugins/nope"),
        ("PATCH", "/api/v1/plugins/nope"),
        ("DELETE", "/api/v1/plugins/nope"),
    ],
)
async def test_unknown_entity_is_404(api: httpx.AsyncClient, method: str, path: str) -> None:
    body = None if method in ("GET", "DELETE") else {"name": "x", "paths": ["/x"], "target": "h:1"}
    response = await api.request(method, path, json=body)
    assert response.status_code == 404, response.text
    assert "nope" in response.json()["message"]
    assert await _version(api) == 1


async def test_each_change_is_one_version_and_no_change_is_none(api: httpx.AsyncClient) -> None:
    versions = []
    for method, path, body in (
        ("POST", "/api/v1/services", {"name": "s", "host": "s"}),
        ("PATCH", "/api/v1/services/s", {"port": 8080}),
        ("POST", "/api/v1/services/s/routes", {"name": "r", "paths": ["/r"]}),
        ("PATCH", "/api/v1/routes/r", {"methods": ["GET"]}),
        ("POST", "/api/v1/upstreams", {"name": "u"}),
        ("POST", "/api/v1/upstreams/u/targets", {"target": "h:1"}),
        ("POST", "/api/v1/consumers", {"username": "c"}),
        ("POST", "/api/v1/consumers/c/key-auth", {"key": "k"}),
    ):
        response = await api.request(method, path, json=body)
        assert response.status_code in (200, 201), response.text
        versions.append(int(response.headers["x-config-version"]))
    assert versions == list(range(2, 10))
    unchanged = await api.patch("/api/v1/services/s", json={"port": 8080})
    assert unchanged.headers["x-config-version"] == "9"
    assert await _version(api) == 9


async def test_declarative_config_reflects_crud_changes(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/services", json={"name": "s", "url": "http://s:81/base"})
    await api.post("/api/v1/services/s/routes", json={"name": "r", "paths": ["/r"]})
    await api.patch("/api/v1/routes/orders", json={"methods": ["GET"]})
    await api.delete("/api/v1/routes/demo")
    await api.post("/api/v1/upstreams", json={"name": "s", "targets": [{"target": "a:1"}]})
    await api.post("/api/v1/consumers", json={"username": "c"})
    response = await api.get("/api/v1/config")
    assert response.headers["x-config-version"] == "7"
    document = response.json()
    service_id = (await api.get("/api/v1/services/s")).json()["id"]
    assert [(s["name"], s["port"], s["path"]) for s in document["services"]] == [
        ("demo", 9, None),
        ("s", 81, "/base"),
    ]
    assert [(r["name"], r["service"], r["methods"]) for r in document["routes"]] == [
        ("orders", DEMO_ID, ["GET"]),
        ("r", service_id, []),
    ]
    assert [u["targets"] for u in document["upstreams"]] == [[{"target": "a:1", "weight": 100}]]
    assert [c["username"] for c in document["consumers"]] == ["c"]


async def test_a_change_is_pushed_to_connected_nodes(
    api: httpx.AsyncClient, control_plane: ControlPlane
) -> None:
    connection = control_plane.registry.attach("dp-1")
    response = await api.post("/api/v1/services", json={"name": "pushed", "host": "p"})
    assert response.status_code == 201, response.text
    message = connection.outbox.get_nowait()
    assert message is not None
    assert message.WhichOneof("message") == "config"
    assert message.config.version == int(response.headers["x-config-version"]) == 2
    config = GatewayConfig.model_validate(json.loads(message.config.config_json))
    assert [s.name for s in config.services] == ["demo", "pushed"]
    assert message.config.hash == config.content_hash()
    refused = await api.post("/api/v1/services", json={"name": "pushed", "host": "p"})
    assert refused.status_code == 422
    assert connection.outbox.empty()


async def test_a_change_that_lost_a_race_is_applied_again(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = config_service.save_if_changed
    calls = 0

    async def lose_once(*args: Any, **kwargs: Any) -> config_service.CurrentConfig:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Conflict("the config changed concurrently; retry the request")
        return await real(*args, **kwargs)

    monkeypatch.setattr(config_service, "save_if_changed", lose_once)
    response = await api.post("/api/v1/services", json={"name": "s", "host": "s"})
    assert response.status_code == 201, response.text
    assert calls == 2
    assert await _names(api, "services") == ["demo", "s"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/services",
        "/api/v1/routes",
        "/api/v1/upstreams",
        "/api/v1/plugins",
        "/api/v1/consumers",
    ],
)
async def test_entity_endpoints_need_the_admin_token(
    api: httpx.AsyncClient,
    control_plane: ControlPlane,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    monkeypatch.setattr(control_plane.settings, "admin_token", SecretStr("s3cret"))
    assert (await api.get(path)).status_code == 401
    refused = await api.post(path, json={"name": "x", "host": "x"})
    assert refused.status_code == 401
    allowed = await api.get(path, headers={"authorization": "Bearer s3cret"})
    assert allowed.status_code == 200, allowed.text


async def test_change_descriptions_name_targets_but_never_keys(
    api: httpx.AsyncClient, control_plane: ControlPlane
) -> None:
    """Each change is stored with a description; a key-auth key is a secret, a target is not."""
    await api.post("/api/v1/upstreams", json={"name": "pool"})
    await api.post("/api/v1/upstreams/pool/targets", json={"target": "10.0.0.1:80"})
    await api.delete("/api/v1/upstreams/pool/targets/10.0.0.1:80")
    await api.post("/api/v1/consumers", json={"username": "ann"})
    await api.post("/api/v1/consumers/ann/key-auth", json={"key": "sekrit-key"})
    await api.delete("/api/v1/consumers/ann/key-auth/sekrit-key")
    async with control_plane.db.session() as db:
        rows = await db.execute(select(GatewayConfigVersion.change))
        changes = [change for (change,) in rows]
    assert "add target of upstream 'pool'" in changes
    assert "remove target '10.0.0.1:80' of upstream 'pool'" in changes
    assert "add key-auth credential of consumer 'ann'" in changes
    assert "remove key-auth credential of consumer 'ann'" in changes
    assert not any("sekrit" in change for change in changes)
