"""GET /api/upload/limits through Chalice's test client: what a front end on another origin checks first."""

import json
from dataclasses import replace

from tests.conftest import ORIGIN


class Unreachable:
    """A dependency that must not be asked anything."""

    def __getattr__(self, name):
        raise AssertionError(f"the limits route touched {name}")


def test_limits_answer_the_size_limit_and_the_types_cacheably_without_database_or_storage(client, deps):
    deps.uploads = deps.storage = Unreachable()

    response = client.http.get("/api/upload/limits", headers={"origin": ORIGIN})

    assert response.status_code == 200
    assert json.loads(response.body) == {"maxUploadBytes": deps.settings.max_upload_bytes,
                                         "fileTypes": ["image/jpeg", "image/png", "image/webp", "image/heic"]}
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert (response.headers["Access-Control-Allow-Origin"], response.headers["Vary"]) == (ORIGIN, "Origin")


def test_limits_follow_max_upload_bytes(client, deps):
    deps.settings = replace(deps.settings, max_upload_bytes=1234)

    assert json.loads(client.http.get("/api/upload/limits").body)["maxUploadBytes"] == 1234


def test_the_literal_limits_path_is_never_read_as_an_upload_id(client, deps):
    deps.uploads.down = True  # a status lookup would now fail with 503

    assert client.http.get("/api/upload/limits").status_code == 200
    refused = client.http.post("/api/upload/limits", headers={"content-type": "application/json"}, body="{}")
    assert (refused.status_code, json.loads(refused.body)) == (405, {"error": {
        "code": "METHOD_NOT_ALLOWED", "message": "Unsupported method: POST"}})
