"""The reference processing service over real HTTP: Replicate's prediction shape and lifecycle, a real preview and
GLB of the photo (checked by the Khronos validator), and every behaviour the tests of the worker will ask of it."""

import ast
import base64
import hashlib
import hmac
import io
import json
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from devstack.processing_service import ProcessingService
from tests.images import pillow_bytes

TOKEN = "reference-service-test-token"
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
JS_DIR = PROJECT_DIR / "tests" / "js"
VALIDATOR = JS_DIR / "node_modules" / "gltf-validator"
FINAL = ("succeeded", "failed", "canceled")
RED, BLUE = (220, 20, 20), (20, 20, 220)


@pytest.fixture(scope="module")
def service(output_dir):
    server = ProcessingService(token=TOKEN, log_file=Path(output_dir) / "processing-service.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def quick(service):
    """Each test starts from the defaults, with steps short enough for a prediction to finish in a fraction of
    a second."""
    service.control.reset()
    service.control.set(delay=0.02)
    yield
    service.control.reset()


class PhotoServer(ThreadingHTTPServer):
    """Photos served on loopback as the bucket's presigned URLs would serve them; webhooks received are kept."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), PhotoHandler)
        self.photos: dict[str, bytes] = {}
        self.webhooks: list[tuple[dict, bytes]] = []

    def publish(self, name: str, data: bytes) -> str:
        self.photos[f"/{name}"] = data
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class PhotoHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        data = self.server.photos.get(self.path.split("?")[0])
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.webhooks.append(({name.lower(): value for name, value in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def photos():
    server = PhotoServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class Api:
    """Replicate's predictions API as the adapter calls it."""

    def __init__(self, service: ProcessingService, token: str | None = TOKEN):
        self.base = service.endpoint_url
        self.token = token

    def call(self, method: str, path: str, body=None, *, timeout: float = 10, raw: bytes | None = None):
        """(status, JSON body, headers), whatever the status."""
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read()), response.headers
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), error.headers

    def create(self, image_url: str, **extra) -> dict:
        status, prediction, _ = self.call("POST", "/v1/predictions",
                                          {"version": "reference-relief-1", "input": {"image": image_url}, **extra})
        assert status == 201, prediction
        return prediction

    def get(self, prediction_id: str) -> dict:
        status, prediction, _ = self.call("GET", f"/v1/predictions/{prediction_id}")
        assert status == 200, prediction
        return prediction

    def wait(self, prediction_id: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            prediction = self.get(prediction_id)
            if prediction["status"] in FINAL:
                return prediction
            time.sleep(0.05)
        raise AssertionError(f"prediction {prediction_id} still {prediction['status']} after {timeout} s")

    def run(self, image_url: str) -> dict:
        return self.wait(self.create(image_url)["id"])


@pytest.fixture
def api(service):
    return Api(service)


def download(url: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), response.headers


def halves_jpeg(orientation: int) -> bytes:
    """A 300x200 JPEG, its left half red and its right half blue, carrying the given EXIF orientation."""
    image = Image.new("RGB", (300, 200), BLUE)
    image.paste(RED, (0, 0, 150, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def close_to(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def preview_of(prediction: dict) -> Image.Image:
    data, headers = download(prediction["output"]["preview"])
    assert headers["Content-Type"] == "image/jpeg" and int(headers["Content-Length"]) == len(data)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.convert("RGB")


def glb_document(data: bytes) -> dict:
    """The JSON chunk of a GLB, after checking the framing: magic, version 2, total length, chunk types."""
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert bin_type == 0x004E4942 and 28 + json_length + bin_length == len(data)
    return json.loads(data[20:20 + json_length])


def validate_gltf(path: Path) -> dict:
    assert VALIDATOR.exists(), f"gltf-validator is missing at {VALIDATOR}: run `npm ci --prefix tests/js`"
    done = subprocess.run(["node", str(JS_DIR / "validate_gltf.mjs"), str(path)], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_a_prediction_is_created_starting_with_replicates_fields_and_urls(api, photos):
    url = photos.publish("created.png", pillow_bytes("PNG", 40, 30))

    prediction = api.create(url)

    assert set(prediction) == {"id", "version", "status", "input", "output", "error", "logs", "created_at",
                               "started_at", "completed_at", "urls", "metrics"}
    assert prediction["status"] == "starting" and prediction["input"] == {"image": url}
    assert (prediction["output"], prediction["error"], prediction["logs"]) == (None, None, "")
    assert (prediction["started_at"], prediction["completed_at"], prediction["metrics"]) == (None, None, {})
    get = f"{api.base}/v1/predictions/{prediction['id']}"
    assert prediction["urls"] == {"get": get, "cancel": f"{get}/cancel"}
    assert datetime.fromisoformat(prediction["created_at"]).utcoffset().total_seconds() == 0


def test_a_prediction_moves_through_processing_with_growing_progress_and_the_preview_before_the_model(
        api, photos, service):
    service.control.set(delay=0.1)
    prediction = api.create(photos.publish("lifecycle.png", pillow_bytes("PNG", 64, 48)))
    seen = []
    while prediction["status"] not in FINAL:
        seen.append(prediction)
        time.sleep(0.03)
        prediction = api.get(prediction["id"])

    processing = [p for p in seen if p["status"] == "processing"]
    assert [p["status"] for p in seen][0] == "starting" and processing
    assert any(p["output"] == {"preview": prediction["output"]["preview"]} for p in processing)
    progress = [int(p["logs"].rsplit("%", 1)[0].split()[-1]) for p in processing if "%" in p["logs"]]
    assert progress == sorted(progress) and progress[-1] < 100 and len(set(progress)) > 3
    assert prediction["status"] == "succeeded"
    assert set(prediction["output"]) == {"preview", "model_file"}
    assert prediction["logs"].splitlines()[-1].startswith("100%|##########| 10/10 [")
    started, completed = (datetime.fromisoformat(prediction[k]) for k in ("started_at", "completed_at"))
    assert datetime.fromisoformat(prediction["created_at"]) <= started <= completed
    assert prediction["metrics"]["predict_time"] > 0


def test_a_jpeg_with_exif_orientation_6_gives_a_preview_turned_upright(api, photos):
    prediction = api.run(photos.publish("rotated.jpg", halves_jpeg(orientation=6)))

    preview = preview_of(prediction)
    # Orientation 6 is shown turned 90 degrees clockwise: the stored left half (red) ends on top.
    assert preview.size == (200, 300)
    assert close_to(preview.getpixel((100, 20)), RED) and close_to(preview.getpixel((100, 280)), BLUE)


def heic_bytes(width: int, height: int) -> bytes:
    """A real HEIC photo, as an iPhone sends them."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    return pillow_bytes("HEIF", width, height)


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "HEIC"])
def test_a_png_a_webp_and_a_heic_photo_each_give_a_preview_no_longer_than_512_pixels(api, photos, image_format):
    photo = heic_bytes(1200, 800) if image_format == "HEIC" else pillow_bytes(image_format, 1200, 800)

    prediction = api.run(photos.publish(f"large.{image_format.lower()}", photo))

    assert prediction["status"] == "succeeded", prediction["error"]
    assert preview_of(prediction).size == (512, 341)


def test_a_png_with_transparency_gives_a_preview_on_white(api, photos):
    clear = io.BytesIO()
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(clear, "PNG")

    preview = preview_of(api.run(photos.publish("clear.png", clear.getvalue())))

    assert close_to(preview.getpixel((10, 10)), (255, 255, 255))


def test_the_model_is_a_textured_glb_relief_the_khronos_validator_accepts_with_no_errors(api, photos, output_dir):
    prediction = api.run(photos.publish("relief.jpg", halves_jpeg(orientation=1)))
    data, headers = download(prediction["output"]["model_file"])
    path = Path(output_dir) / "reference-relief.glb"
    path.write_bytes(data)

    assert headers["Content-Type"] == "model/gltf-binary" and int(headers["Content-Length"]) == len(data)
    document = glb_document(data)
    assert document["asset"]["version"] == "2.0"
    primitive = document["meshes"][0]["primitives"][0]
    assert set(primitive["attributes"]) == {"POSITION", "NORMAL", "TEXCOORD_0"} and "indices" in primitive
    position = document["accessors"][primitive["attributes"]["POSITION"]]
    assert position["count"] <= 64 * 64 and len(position["min"]) == len(position["max"]) == 3
    assert position["max"][2] > position["min"][2], "the relief has depth"
    material = document["materials"][primitive["material"]]
    texture = document["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
    assert document["images"][texture["source"]]["mimeType"] == "image/jpeg"
    report = validate_gltf(path)
    (Path(output_dir) / "reference-relief.validator.json").write_text(json.dumps(report, indent=2))
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"]
    assert report["info"]["hasTextures"] and report["info"]["totalTriangleCount"] > 0


def test_the_fail_mode_ends_the_prediction_failed_with_a_technical_error(api, photos, service):
    service.control.set(mode="fail")

    prediction = api.run(photos.publish("fails.png", pillow_bytes("PNG")))

    assert prediction["status"] == "failed" and "CUDA" in prediction["error"]
    assert "model_file" not in (prediction["output"] or {})


def test_the_cancel_mode_ends_the_prediction_canceled(api, photos, service):
    service.control.set(mode="cancel")

    prediction = api.run(photos.publish("cancels.png", pillow_bytes("PNG")))

    assert prediction["status"] == "canceled" and prediction["completed_at"]
    assert "model_file" not in (prediction["output"] or {})


def test_a_photo_that_cannot_be_downloaded_or_read_fails_the_prediction(api, photos):
    missing = api.run(photos.publish("missing.png", b"").replace("missing.png", "nowhere.png"))
    unreadable = api.run(photos.publish("unreadable.png", b"not an image at all"))

    assert missing["status"] == "failed" and "404" in missing["error"]
    assert unreadable["status"] == "failed" and "cannot identify image" in unreadable["error"]


def test_the_garbage_model_mode_succeeds_with_a_model_file_that_is_no_glb(api, photos, service):
    service.control.set(mode="garbage_model")

    prediction = api.run(photos.publish("garbage-model.png", pillow_bytes("PNG")))
    data, _ = download(prediction["output"]["model_file"])

    assert prediction["status"] == "succeeded" and not data.startswith(b"glTF")
    assert preview_of(prediction).size == (8, 8)


def test_the_garbage_preview_mode_succeeds_with_a_preview_that_is_no_image(api, photos, service):
    service.control.set(mode="garbage_preview")

    prediction = api.run(photos.publish("garbage-preview.png", pillow_bytes("PNG")))
    data, _ = download(prediction["output"]["preview"])

    assert prediction["status"] == "succeeded"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(data))


def test_the_huge_model_mode_claims_two_gibibytes_and_keeps_streaming_until_the_reader_stops(api, photos, service):
    service.control.set(mode="huge_model")
    prediction = api.run(photos.publish("huge.png", pillow_bytes("PNG")))

    with urllib.request.urlopen(prediction["output"]["model_file"], timeout=10) as response:
        assert int(response.headers["Content-Length"]) == 2 * 1024 ** 3
        received = sum(len(response.read(1024 * 1024)) for _ in range(8))

    assert received == 8 * 1024 * 1024


@pytest.mark.parametrize("mode, status", [("http_500", 500), ("http_429", 429)])
def test_the_next_n_api_requests_answer_500_or_429_and_then_the_api_answers_again(api, photos, service, mode,
                                                                                  status):
    service.control.set(mode=mode, count=2, retry_after=3)
    url = photos.publish("faults.png", pillow_bytes("PNG"))

    first, second = (api.call("POST", "/v1/predictions", {"version": "v", "input": {"image": url}})
                     for _ in range(2))
    third = api.call("POST", "/v1/predictions", {"version": "v", "input": {"image": url}})

    assert [first[0], second[0], third[0]] == [status, status, 201]
    assert "detail" in first[1]
    if status == 429:
        assert first[2]["Retry-After"] == "3"
    assert service.control.stats()["predictions_created"] == 1


def test_the_hang_mode_holds_the_next_answers_so_that_a_client_times_out(api, photos, service):
    prediction = api.create(photos.publish("hang.png", pillow_bytes("PNG")))
    service.control.set(mode="hang", count=1, seconds=2)

    with pytest.raises((TimeoutError, urllib.error.URLError)):
        api.call("GET", f"/v1/predictions/{prediction['id']}", timeout=0.5)
    started = time.monotonic()
    api.get(prediction["id"])

    assert time.monotonic() - started < 1


def test_the_api_needs_the_bearer_token_but_outputs_and_control_do_not(service, photos, api):
    prediction = api.run(photos.publish("auth.png", pillow_bytes("PNG")))
    path = f"/v1/predictions/{prediction['id']}"

    for anonymous in (Api(service, token=None), Api(service, token="wrong-token")):
        status, body, _ = anonymous.call("GET", path)
        assert status == 401 and body["detail"]
        status, body, _ = anonymous.call("POST", "/v1/predictions", {"version": "v", "input": {"image": "http://a/b"}})
        assert status == 401
    assert download(prediction["output"]["model_file"])[0].startswith(b"glTF")
    assert service.control.stats()["predictions_created"] == 1


def test_a_missing_version_or_image_is_refused_with_422_and_an_unknown_id_with_404(api):
    refused = [api.call("POST", "/v1/predictions", body)[0] for body in (
        {"input": {"image": "https://bucket.example/photo.jpg"}},
        {"version": "", "input": {"image": "https://bucket.example/photo.jpg"}},
        {"version": "v"},
        {"version": "v", "input": {"image": "ftp://bucket.example/photo.jpg"}},
        {"version": "v", "input": {"image": 7}},
        ["not", "an", "object"],
    )]

    assert refused == [422] * 6
    assert api.call("GET", "/v1/predictions/nosuchprediction")[0] == 404
    assert api.call("POST", "/v1/predictions/nosuchprediction/cancel")[0] == 404
    assert api.call("POST", "/v1/predictions", raw=b"{not json")[0] == 400


def test_a_cancel_ends_a_running_prediction_canceled_and_leaves_a_finished_one_alone(api, photos, service):
    service.control.set(delay=0.3)
    running = api.create(photos.publish("cancel-me.png", pillow_bytes("PNG")))

    status, canceled, _ = api.call("POST", f"/v1/predictions/{running['id']}/cancel")
    time.sleep(0.8)

    assert status == 200 and canceled["status"] == "canceled" and canceled["completed_at"]
    assert api.get(running["id"])["status"] == "canceled"
    service.control.set(delay=0)
    finished = api.run(photos.publish("finished.png", pillow_bytes("PNG")))
    assert api.call("POST", f"/v1/predictions/{finished['id']}/cancel")[1]["status"] == "succeeded"


def test_the_stats_count_predictions_per_input_image_path_until_reset(api, photos, service):
    url = photos.publish("counted.png", pillow_bytes("PNG"))
    api.create(url)
    api.create(url + "?X-Amz-Signature=another")
    api.create(photos.publish("other.png", pillow_bytes("PNG")))

    assert service.control.stats() == {"predictions_created": 3, "by_image_path": {"/counted.png": 2,
                                                                                   "/other.png": 1}}
    service.control.reset()
    assert service.control.stats() == {"predictions_created": 0, "by_image_path": {}}


def test_a_webhook_gets_the_completed_prediction_signed_with_the_services_secret(api, photos, service):
    webhook = photos.publish("webhook", b"")
    photos.webhooks.clear()

    created = api.create(photos.publish("hooked.png", pillow_bytes("PNG")), webhook=webhook,
                         webhook_events_filter=["completed"])
    assert api.wait(created["id"])["status"] == "succeeded"
    time.sleep(0.2)

    assert len(photos.webhooks) == 1
    headers, body = photos.webhooks[0]
    assert json.loads(body)["status"] == "succeeded"
    status, secret, _ = api.call("GET", "/v1/webhooks/default/secret")
    assert status == 200 and secret["key"] == service.webhook_secret
    key = base64.b64decode(secret["key"].removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60


def test_the_control_refuses_a_mode_it_does_not_know(service):
    request = urllib.request.Request(f"{service.endpoint_url}/_control", data=b'{"mode": "explode"}', method="POST")

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)

    assert refused.value.code == 400


def test_the_deployed_code_imports_neither_the_service_nor_its_image_libraries():
    deployed = [PROJECT_DIR / "app.py", *sorted((PROJECT_DIR / "chalicelib").rglob("*.py"))]
    imported = set()
    for path in deployed:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])

    assert imported.isdisjoint({"devstack", "PIL", "pillow_heif"})
    runtime = (PROJECT_DIR / "requirements.txt").read_text().lower()
    assert "pillow" not in runtime and "heif" not in runtime
