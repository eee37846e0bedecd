"""The foundation scenario end to end over HTTP: nodes, proxying, a session on one node."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Stack, wait_for

SPAN_KIND_SERVER = "SERVER"


def test_nodes_are_listed_as_connected(stack: Stack) -> None:
    nodes = stack.ok("GET", "/api/v1/nodes")
    assert [n["id"] for n in nodes] == ["dp-1", "dp-2"]
    for node in nodes:
        assert node["status"] == "connected"
        assert node["hostname"]
        assert node["version"]
        assert node["last_seen"]
        assert len(node["config_hash"]) == 64


def test_both_nodes_proxy_to_the_demo_upstream(stack: Stack) -> None:
    for node in stack.nodes.values():
        response = httpx.get(node.proxy + "/demo/hello", timeout=5)
        assert response.status_code == 200
        assert response.json() == {"message": "hello from the demo upstream"}
        assert "activetrace" in response.headers["via"]


def test_unknown_path_is_a_json_404(stack: Stack) -> None:
    response = httpx.get(stack.nodes["dp-1"].proxy + "/nowhere", timeout=5)
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "no Route matched with those values"
    assert body["request_id"]


def test_session_traces_only_matching_requests_on_its_node(stack: Stack) -> None:
    dp1, dp2 = stack.nodes["dp-1"].proxy, stack.nodes["dp-2"].proxy
    session = stack.ok(
        "POST",
        "/api/v1/tracing-sessions",
        json={
            "name": "orders GETs",
            "targets": ["dp-1"],
            "scope": {"route": "orders"},
            "sampling_rule": 'http.method == "GET" && http.path ^= "/demo/orders"',
            "max_samples": 3,
            "duration_secs": 120,
        },
    )
    assert session["status"] == "pending"
    assert session["scope"] == {"kind": "route", "id": session["scope"]["id"], "name": "orders"}
    stack.wait_target_state(session["id"], "dp-1", "active")

    # Not traced: other node, other route, rule mismatch.
    assert httpx.get(dp2 + "/demo/orders", timeout=5).status_code == 200
    assert httpx.get(dp1 + "/demo/hello", timeout=5).status_code == 200
    assert httpx.post(dp1 + "/demo/orders", json={"item": "cup"}, timeout=5).status_code == 201
    # Traced: the first three in-scope matching requests on dp-1.
    request_ids = [f"req-{i}" for i in range(5)]
    for request_id in request_ids:
        response = httpx.get(dp1 + "/demo/orders", headers={"x-request-id": request_id}, timeout=5)
        assert response.status_code == 200

    done = stack.wait_session(session["id"], "completed")
    assert done["targets"] == [
        {"node_id": "dp-1", "state": "completed", "samples": 3, "message": ""}
    ]
    traces = stack.ok("GET", f"/api/v1/tracing-sessions/{session['id']}/traces")["items"]
    assert len(traces) == 3
    for row in traces:
        assert row["node_id"] == "dp-1"
        assert row["method"] == "GET"
        assert row["path"] == "/demo/orders"
        assert row["status_code"] == 200
        assert row["route"] == "orders"
        assert row["service"] == "demo"
        assert row["span_count"] >= 4
        assert row["error"] is False

    detail = stack.ok("GET", f"/api/v1/traces/{traces[0]['trace_id']}")
    assert detail["session_id"] == session["id"]
    assert detail["node_id"] == "dp-1"
    spans = {s["name"]: s for s in detail["spans"] if s["service_name"] == "activetrace-dataplane"}
    root = spans["GET /demo/orders"]
    assert root["kind"] == SPAN_KIND_SERVER
    assert root["parent_span_id"] is None
    attributes = root["attributes"]
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.path"] == "/demo/orders"
    assert attributes["http.route"] == "/demo/orders"
    assert attributes["http.response.status_code"] == 200
    assert attributes["gateway.request.id"] in request_ids[:3]
    assert attributes["gateway.session.id"] == session["id"]
    assert attributes["gateway.route.name"] == "orders"
    assert attributes["gateway.service.name"] == "demo"
    assert attributes["gateway.latency.total_ms"] >= attributes["gateway.latency.upstream_ms"] > 0
    router = spans["gateway.router"]
    assert router["parent_span_id"] == root["span_id"]
    assert router["attributes"]["gateway.route.id"] == attributes["gateway.route.id"]
    upstream = spans["gateway.upstream"]
    assert upstream["kind"] == "CLIENT"
    assert upstream["attributes"]["http.response.status_code"] == 200
    assert upstream["attributes"]["server.port"] == stack.upstream_port
    for phase in (
        "gateway.upstream.send_request",
        "gateway.upstream.ttfb",
        "gateway.upstream.read_response",
    ):
        assert spans[phase]["parent_span_id"] == upstream["span_id"], phase
    for span in spans.values():
        assert root["start_time_unix_nano"] <= span["start_time_unix_nano"]
        assert span["end_time_unix_nano"] <= root["end_time_unix_nano"]

    # After completion nothing more is traced.
    httpx.get(dp1 + "/demo/orders", timeout=5)
    assert (
        stack.ok("GET", f"/api/v1/tracing-sessions/{session['id']}")["targets"][0]["samples"] == 3
    )


def test_stop_and_delete(stack: Stack) -> None:
    session = stack.ok(
        "POST", "/api/v1/tracing-sessions", json={"targets": ["dp-1", "dp-2"], "max_samples": 1000}
    )
    stack.wait_target_state(session["id"], "dp-2", "active")
    httpx.get(stack.nodes["dp-2"].proxy + "/demo/hello", timeout=5)
    wait_for(
        lambda: stack.ok("GET", f"/api/v1/tracing-sessions/{session['id']}/traces")["items"],
        "the trace to be stored",
    )
    stopped = stack.ok("POST", f"/api/v1/tracing-sessions/{session['id']}/stop")
    assert stopped["status"] == "stopped"
    assert {t["state"] for t in stopped["targets"]} == {"stopped"}
    traces = stack.ok("GET", f"/api/v1/tracing-sessions/{session['id']}/traces")["items"]
    assert stack.call("DELETE", f"/api/v1/tracing-sessions/{session['id']}").status_code == 204
    assert stack.call("GET", f"/api/v1/tracing-sessions/{session['id']}").status_code == 404
    assert stack.call("GET", f"/api/v1/traces/{traces[0]['trace_id']}").status_code == 404


def test_duration_ends_the_session(stack: Stack) -> None:
    session = stack.ok(
        "POST",
        "/api/v1/tracing-sessions",
        json={"targets": ["dp-1"], "duration_secs": 1, "sampling_rule": 'http.path == "/never"'},
    )
    done = stack.wait_session(session["id"], "completed", "expired")
    assert done["targets"][0]["state"] == "expired"
    assert done["ended_at"] is not None
