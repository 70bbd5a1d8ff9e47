"""Every error path: exact status, headers and body (``detail`` + structured ``error``)."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from server_helpers import call, make_app, running

from m0rank import Reranker

QUERY = "markdown"


@pytest.fixture(scope="module")
def reranker(dummy_reranker):
    """Error paths are the HTTP layer's: the weight-free dummy model serves them."""
    return dummy_reranker


def assert_error(response, status, error_type, message=None):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"detail", "error"}
    request_id = response.headers["x-request-id"]
    assert body["error"]["type"] == error_type
    assert body["error"]["code"] == status
    assert body["error"]["request_id"] == request_id
    assert body["error"]["message"] == body["detail"]
    if message is not None:
        assert body["detail"] == message
    return body


@pytest.mark.parametrize(("payload", "message"), [
    ({"query": "", "documents": ["a"]}, "query must not be empty or only whitespace"),
    ({"query": " ", "documents": ["a"]}, "query must not be empty or only whitespace"),
    ({"query": QUERY, "documents": []}, "documents must not be empty"),
    ({"query": QUERY, "documents": ["ok", "  "]},
     "documents[1] must not be empty or only whitespace"),
    ({"query": QUERY, "documents": [{}]},
     "documents[0] must have a 'text' or an 'image' key, got keys []"),
    ({"query": {}, "documents": ["a"]}, "query must have a 'text' or an 'image' key, got keys []"),
    ({"query": QUERY, "documents": ["a"], "top_n": -1},
     "top_n must be a positive integer or null, got -1"),
    ({"query": QUERY, "documents": ["a"], "max_tokens_per_doc": 0},
     "max_tokens_per_doc must be a positive integer or null, got 0"),
    ({"query": QUERY, "documents": [{"title": "t"}], "rank_fields": ["text"]},
     "documents[0] has none of the rank_fields ['text'], got keys ['title']"),
])
def test_invalid_input_is_400(app_client, payload, message):
    assert_error(app_client("POST", "/v1/rerank", json=payload), 400, "invalid_request", message)


def test_invalid_input_on_v2_is_400(app_client):
    response = app_client("POST", "/v2/rerank", json={"query": "", "documents": ["a"]})
    assert_error(response, 400, "invalid_request", "query must not be empty or only whitespace")


def test_bad_images_are_400_naming_the_field(app_client):
    response = app_client("POST", "/v1/rerank", json={
        "query": QUERY, "documents": ["fine", {"image": "bm90IGFuIGltYWdl"}]})
    body = assert_error(response, 400, "invalid_image")
    assert body["detail"].startswith("documents[1].image")
    response = app_client("POST", "/v1/rerank", json={
        "query": QUERY, "documents": [{"image": "http://127.0.0.1:9/cat.png"}]})
    body = assert_error(response, 400, "image_fetch_error")
    assert body["detail"].startswith("documents[0].image: refusing to fetch")
    response = app_client("POST", "/v1/rerank", json={
        "query": {"image": "/etc/passwd.png"}, "documents": ["a"]})
    body = assert_error(response, 400, "invalid_image")
    assert "local file paths are not accepted" in body["detail"]


@pytest.mark.parametrize(("payload", "location"), [
    ({"documents": ["a"]}, "body.query: Field required"),
    ({"query": 5, "documents": ["a"]}, "body.query.str: Input should be a valid string"),
    ({"query": QUERY, "documents": 5}, "body.documents.list"),
    ({"query": QUERY, "documents": [5]}, "body.documents.list[union[str,DocumentObject]].0.str"),
    ({"query": QUERY, "documents": ["a"], "top_n": "many"}, "body.top_n: Input should be"),
])
def test_schema_errors_are_422(app_client, payload, location):
    body = assert_error(app_client("POST", "/v1/rerank", json=payload), 422, "validation_error")
    assert body["detail"].startswith("invalid request: ")
    assert location in body["detail"]
    assert body["error"]["errors"][0]["loc"][0] == "body"


def test_malformed_json_is_422(app_client):
    response = app_client("POST", "/v1/rerank", content=b"{not json",
                          headers={"content-type": "application/json"})
    body = assert_error(response, 422, "validation_error")
    assert "JSON decode error" in body["detail"]


def test_unknown_path_and_method(app_client):
    assert_error(app_client("GET", "/v3/rerank"), 404, "not_found", "Not Found")
    assert_error(app_client("GET", "/v1/rerank"), 405, "method_not_allowed",
                 "Method Not Allowed")


def test_request_id_is_echoed_or_generated(app_client):
    response = app_client("POST", "/v1/rerank", json={"query": "", "documents": ["a"]},
                          headers={"X-Request-ID": "client-id.42"})
    assert response.headers["x-request-id"] == "client-id.42"
    assert response.json()["error"]["request_id"] == "client-id.42"
    response = app_client("GET", "/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_auth(reranker):
    app = make_app(reranker, api_keys=("key-one", "key-two"))
    payload = {"query": QUERY, "documents": ["a"]}

    async def scenario(client):
        missing = await client.post("/v1/rerank", json=payload)
        wrong = await client.post("/v2/rerank", json=payload,
                                  headers={"Authorization": "Bearer key-three"})
        basic = await client.get("/v1/models", headers={"Authorization": "Basic key-one"})
        good = await client.post("/v1/rerank", json=payload,
                                 headers={"Authorization": "Bearer key-two"})
        open_health = await client.get("/health")
        garbage = await client.post("/v1/rerank", content=b"{not json",
                                    headers={"content-type": "application/json"})
        bad_schema = await client.post("/v2/rerank", json={"documents": 5},
                                       headers={"Authorization": "Bearer key-three"})
        keyed_garbage = await client.post("/v1/rerank", content=b"{not json",
                                          headers={"content-type": "application/json",
                                                   "Authorization": "Bearer key-one"})
        return missing, wrong, basic, good, open_health, garbage, bad_schema, keyed_garbage

    missing, wrong, basic, good, open_health, garbage, bad_schema, keyed_garbage = call(
        app, scenario)
    assert_error(keyed_garbage, 422, "validation_error")
    for response, message in ((missing, "missing API key: send an 'Authorization: Bearer "
                                        "<key>' header"),
                              (garbage, "missing API key: send an 'Authorization: Bearer "
                                        "<key>' header"),
                              (bad_schema, "invalid API key"),
                              (wrong, "invalid API key"),
                              (basic, "missing API key: send an 'Authorization: Bearer "
                                      "<key>' header")):
        assert_error(response, 401, "authentication_error", message)
        assert response.headers["www-authenticate"] == "Bearer"
    assert good.status_code == 200
    assert open_health.status_code == 200


def test_any_authorization_header_is_tolerated_without_keys(app_client):
    response = app_client("POST", "/v2/rerank", json={"query": QUERY, "documents": ["a"]},
                          headers={"Authorization": "Bearer whatever-the-sdk-sends"})
    assert response.status_code == 200


def test_size_limits_are_413(reranker):
    app = make_app(reranker, max_body_bytes=2000, max_documents=3, max_query_chars=10)

    async def scenario(client):
        declared = await client.post("/v1/rerank", json={"query": "q", "documents": ["x" * 3000]})

        async def chunks():
            for _ in range(5):
                yield b" " * 1000

        streamed = await client.post("/v1/rerank", content=chunks(),
                                     headers={"content-type": "application/json"})
        many = await client.post("/v1/rerank", json={"query": "q", "documents": ["a"] * 4})
        long_query = await client.post("/v2/rerank", json={"query": "q" * 11, "documents": ["a"]})
        vllm_query = await client.post("/v1/rerank", json={
            "query": {"content": [{"type": "text", "text": "q" * 12}]}, "documents": ["a"]})
        return declared, streamed, many, long_query, vllm_query

    declared, streamed, many, long_query, vllm_query = call(app, scenario)
    body_message = "the request body is larger than this server's limit of 2000 bytes"
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert_error(declared, 413, "input_too_large", body_message)
    assert_error(streamed, 413, "input_too_large", body_message)
    assert_error(many, 413, "input_too_large",
                 "documents has 4 items; this server accepts at most 3 per request")
    assert_error(long_query, 413, "input_too_large",
                 "query is 11 characters long; this server accepts at most 10")
    assert_error(vllm_query, 413, "input_too_large",
                 "query is 12 characters long; this server accepts at most 10")


def test_rate_limits_are_429_with_retry_after(reranker):
    headers = {"Authorization": "Bearer k"}
    payload = {"query": QUERY, "documents": ["a"]}

    async def three(client):
        return [await client.post("/v1/rerank", json=payload, headers=headers) for _ in range(3)]

    responses = call(make_app(reranker, api_keys=("k",), rpm_limit=2), three)
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert_error(responses[2], 429, "rate_limit_exceeded",
                 "rate limit exceeded: 2 requests per minute for this API key")
    assert int(responses[2].headers["retry-after"]) == 30
    responses = call(make_app(reranker, api_keys=("k",), tpm_limit=5), three)
    assert [r.status_code for r in responses] == [200, 429, 429]
    assert_error(responses[1], 429, "rate_limit_exceeded",
                 "rate limit exceeded: 5 tokens per minute for this API key")
    assert int(responses[1].headers["retry-after"]) >= 60


class Gate:
    """Holds every forward pass of one engine until released."""

    def __init__(self, engine):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[int] = []
        original = engine.launch

        def run_batch(batch):
            self.entered.set()
            self.release.wait(30)
            self.batches.append(len(batch))
            return original(batch)

        engine.launch = run_batch

    async def wait_entered(self):
        assert await asyncio.to_thread(self.entered.wait, 30)


def gated(reranker):
    """A Reranker sharing the session model, with its own gated engine."""
    own = Reranker(reranker.model)
    return own, Gate(own.engine)


def test_full_queue_is_429(reranker):
    own, gate = gated(reranker)
    app = make_app(own, max_queue_pairs=2)
    payload = {"query": QUERY, "documents": ["a", "b"]}

    async def scenario(client):
        first = asyncio.ensure_future(client.post("/v1/rerank", json=payload))
        await gate.wait_entered()  # the first request's pairs left the queue for the model
        second = asyncio.ensure_future(client.post("/v1/rerank", json=payload))
        while app.state.m0rank.service.batcher.prepared_pairs < 2:
            await asyncio.sleep(0.01)
        third = await client.post("/v1/rerank", json={"query": QUERY, "documents": ["c"]})
        gate.release.set()
        return await first, await second, third

    first, second, third = call(app, scenario)
    assert (first.status_code, second.status_code) == (200, 200)
    assert_error(third, 429, "overloaded",
                 "the server is overloaded (2 pairs queued, limit 2); retry later")
    assert third.headers["retry-after"] == "1"


def test_timeout_is_503(reranker):
    own, gate = gated(reranker)
    app = make_app(own, request_timeout_s=0.3)

    async def scenario(client):
        response = await client.post("/v1/rerank", json={"query": QUERY, "documents": ["a"]})
        gate.release.set()
        return response

    assert_error(call(app, scenario), 503, "timeout",
                 "the request was not scored within 0.3 s; the server is busy, retry later or "
                 "send fewer documents")


def test_draining_refuses_new_requests_and_finishes_in_flight(reranker):
    own, gate = gated(reranker)
    app = make_app(own)
    lifecycle = app.state.m0rank.lifecycle
    payload = {"query": QUERY, "documents": ["a", "b"]}

    async def scenario():
        async with running(app) as client:
            in_flight = asyncio.ensure_future(client.post("/v1/rerank", json=payload))
            await gate.wait_entered()
            lifecycle.begin_drain()
            refused = await client.post("/v1/rerank", json=payload)
            not_ready = await client.get("/ready")
            health = await client.get("/health")
            gate.release.set()
            return await in_flight, refused, not_ready, health

    in_flight, refused, not_ready, health = asyncio.run(scenario())
    assert in_flight.status_code == 200
    assert len(in_flight.json()["results"]) == 2
    message = "the server is shutting down and takes no new requests"
    assert_error(refused, 503, "service_unavailable", message)
    assert_error(not_ready, 503, "service_unavailable", message)
    assert health.status_code == 200


def test_lifespan_shutdown_waits_for_in_flight_requests(reranker):
    own, gate = gated(reranker)
    app = make_app(own)

    async def scenario():
        async with running(app) as client:
            in_flight = asyncio.ensure_future(client.post("/v1/rerank", json={
                "query": QUERY, "documents": ["a"]}))
            await gate.wait_entered()
        # lifespan exit began while the request was held; release it from another thread
        return in_flight

    async def main():
        threading.Timer(0.3, gate.release.set).start()
        task = await scenario()
        return await task

    response = asyncio.run(main())
    assert response.status_code == 200
    assert app.state.m0rank.lifecycle.state.value == "stopped"


def test_internal_errors_are_500_with_request_id_only(reranker):
    own = Reranker(reranker.model)

    def explode(batch):
        raise RuntimeError("secret internal detail /srv/weights")

    own.engine.launch = explode
    app = make_app(own)

    async def scenario(client):
        from_model = await client.post("/v1/rerank", json={"query": QUERY, "documents": ["a"]})

        async def broken(call, key):
            raise KeyError("another secret")

        app.state.m0rank.service.rerank = broken
        from_route = await client.post("/v2/rerank", json={"query": QUERY, "documents": ["a"]})
        return from_model, from_route

    for response in call(app, scenario):
        request_id = response.headers["x-request-id"]
        assert_error(response, 500, "internal_error",
                     f"internal server error (request id {request_id})")
        assert "secret" not in response.text
        assert "Traceback" not in response.text


def test_error_statuses_are_counted_in_metrics(app_client):
    app_client("POST", "/v1/rerank", json={"query": "", "documents": ["a"]})
    text = app_client("GET", "/metrics").text
    assert re.search(r'm0rank_requests_total\{route="/v1/rerank",status="400"\} [1-9]', text)
    app_client("GET", "/nope")
    assert 'm0rank_requests_total{route="unmatched",status="404"}' in app_client(
        "GET", "/metrics").text


def test_ready_is_503_while_warming_up_or_after_a_failed_warm_up(reranker, monkeypatch):
    warming = threading.Event()

    def slow_warmup():
        warming.wait(30)

    monkeypatch.setattr(reranker.model, "warmup", slow_warmup)

    async def scenario(client):
        not_yet = await client.get("/ready")
        health = await client.get("/health")
        served = await client.post("/v1/rerank", json={"query": QUERY, "documents": ["a"]})
        warming.set()
        while (await client.get("/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        return not_yet, health, served

    async def run():
        async with running(make_app(reranker), wait_ready=False) as client:
            return await scenario(client)

    not_yet, health, served = asyncio.run(run())
    assert_error(not_yet, 503, "service_unavailable", "the model is still warming up")
    assert health.status_code == 200
    assert served.status_code == 200  # requests are served while warming, just not advertised

    def broken_warmup():
        raise RuntimeError("cuda is on fire")

    monkeypatch.setattr(reranker.model, "warmup", broken_warmup)

    async def failed():
        app = make_app(reranker)
        async with running(app, wait_ready=False) as client:
            while app.state.m0rank.lifecycle.state.value == "starting":
                await asyncio.sleep(0.01)
            return await client.get("/ready")

    assert_error(asyncio.run(failed()), 503, "service_unavailable",
                 "the model failed to warm up; see the server log")


def test_concurrent_requests_cannot_overdraw_the_token_limit(reranker):
    """Tokens are reserved at admission: of 20 simultaneous ~2,600-token requests against a
    3,000-token budget, exactly one is scored."""
    long_text = "apple " * 2200  # ~13,200 UTF-8 bytes, ~3,800 estimated tokens each
    payload = {"query": QUERY, "documents": [long_text[:9000]]}
    app = make_app(reranker, api_keys=("k",), tpm_limit=3000)

    async def twenty(client):
        return await asyncio.gather(*[
            client.post("/v1/rerank", json=payload, headers={"Authorization": "Bearer k"})
            for _ in range(20)])

    responses = call(app, twenty)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [429] * 19
    refused = next(r for r in responses if r.status_code == 429)
    assert_error(refused, 429, "rate_limit_exceeded",
                 "rate limit exceeded: 3000 tokens per minute for this API key")
    assert int(refused.headers["retry-after"]) >= 1
