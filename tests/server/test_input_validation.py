"""Protocol-level input checks: strict integers and booleans, lone surrogates named by field,
and bodies that are not JSON (bad UTF-8, nesting past the parser's limit) answered with the
usual error body, on the typed routes and on those that read several shapes themselves."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_app

QUERY = "small language model"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def reranker(dummy_reranker):
    """Input validation is the HTTP layer's: the weight-free dummy model serves it."""
    return dummy_reranker


def assert_error(response, status, error_type, message):
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"detail", "error"}
    assert body["detail"] == body["error"]["message"] == message
    assert body["error"]["type"] == error_type
    assert body["error"]["code"] == status
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize(("field", "value", "message"), [
    ("top_n", True, "Input should be a valid integer"),
    ("top_n", 1.0, "Input should be a valid integer"),
    ("top_n", "2", "Input should be a valid integer"),
    ("max_tokens_per_doc", True, "Input should be a valid integer"),
    ("return_documents", "yes", "Input should be a valid boolean"),
    ("raw_scores", 1, "Input should be a valid boolean"),
])
def test_no_lax_coercion_of_integers_and_booleans(app_client, field, value, message):
    response = app_client("POST", "/v1/rerank", json={"query": QUERY, "documents": ["a"],
                                                      field: value})
    body = assert_error(response, 422, "validation_error",
                        f"invalid request: body.{field}: {message}")
    assert body["error"]["errors"][0]["loc"] == ["body", field]


@pytest.mark.parametrize(("path", "payload", "where"), [
    ("/v1/rerank", {"query": "q\ud800", "documents": ["a"]}, "query contains a lone "
     "surrogate \\ud800 at character 1"),
    ("/v2/rerank", {"query": {"text": "\udfff"}, "documents": ["a"]}, "query.text contains a "
     "lone surrogate \\udfff at character 0"),
    ("/rerank", {"query": QUERY, "documents": ["a", {"text": "b", "note": "\ud800"}]},
     "documents[1].note contains a lone surrogate \\ud800 at character 0"),
    ("/v1/rerank", {"query": QUERY, "documents": [{"content": [
        {"type": "text", "text": "\ud800"}]}]},
     "documents[0].content[0].text contains a lone surrogate \\ud800 at character 0"),
    ("/score", {"queries": QUERY, "documents": ["ok", "x\ud800"]},
     "documents[1] contains a lone surrogate \\ud800 at character 1"),
])
def test_lone_surrogates_are_400_naming_the_field(app_client, path, payload, where):
    # json.dumps escapes them as JSON "\ud800", as a client's encoder would
    response = app_client("POST", path, content=json.dumps(payload), headers=JSON)
    assert_error(response, 400, "invalid_request", f"{where}; text must be valid Unicode")


DEEP = b'{"query": "q", "documents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank", "/score", "/invocations"])
@pytest.mark.parametrize(("body", "loc", "message"), [
    (b'{"query": "\xff\xfe", "documents": ["a"]}', ["body", "11"],
     "not valid UTF-8: invalid start byte (byte 0xff)"),
    (DEEP, ["body"], "JSON nested too deeply"),
])
def test_bodies_that_are_not_json_get_the_usual_error_body(app_client, path, body, loc,
                                                           message):
    response = app_client("POST", path, content=body, headers=JSON)
    detail = f"invalid request: {'.'.join(loc)}: {message}"
    answer = assert_error(response, 422, "validation_error", detail)
    assert answer["error"]["errors"] == [{"loc": loc, "msg": message, "type": "json_invalid"}]


def test_a_caller_without_a_key_hears_401_before_any_body_error(reranker):
    with TestClient(make_app(reranker, api_keys=("k",)), raise_server_exceptions=False) as c:
        for path in ("/v1/rerank", "/rerank"):
            response = c.post(path, content=b'{"query": "\xff"}', headers=JSON)
            assert response.status_code == 401, (path, response.json())
            keyed = c.post(path, content=b'{"query": "\xff"}',
                           headers={**JSON, "authorization": "Bearer k"})
            assert keyed.status_code == 422


def nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
@pytest.mark.parametrize("depth", [40, 900])
def test_deep_values_inside_a_parsable_body_are_refused_not_500(app_client, path, depth):
    # under the parser's limit, but the echo of such a document would fail to serialise
    body = '{"query": "q", "documents": ["a", {"text": "b", "meta": ' + nested(depth) + "}]}"
    response = app_client("POST", path, content=body, headers=JSON)
    assert_error(response, 400, "invalid_request",
                 "documents[1].meta[0][0][0] is nested more than 32 levels deep")


@pytest.mark.parametrize("field", ["query", "documents"])
def test_deep_values_in_typed_fields_are_schema_errors(app_client, field):
    body = {"query": "q", "documents": ["a"]}
    raw = json.dumps(body).replace(f'"{field}": ' + json.dumps(body[field]),
                                   f'"{field}": {nested(900)}')
    response = app_client("POST", "/v1/rerank", content=raw, headers=JSON)
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "validation_error"
