"""The OpenAPI document describes exactly the API the app serves, in terms a generator can type."""

import ast
import json
import re
from pathlib import Path

import app as app_module
from chalicelib import domain, errors
from chalicelib.http import CHALICE_CODES
from ops.package import gateway_responses

ROOT = Path(app_module.__file__).parent
SPEC = json.loads((ROOT / "chalicelib" / "openapi.json").read_text())
# The served pages and their assets: the same function serves them, but they are no part of the API.
PAGES = {"/", "/processing/{}", "/static/{}"}


def error_code_literals(source):
    """The upper-case SNAKE_CASE string constants of a module's source.

    Under `make mutation` the module also holds mutmut's altered copies of each function (named `..__mutmut_<n>`),
    whose strings are mutations, not codes: those copies are skipped, so the test reads the same code either way.
    """
    tree = ast.parse(source)
    skipped = {id(child) for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef) and re.search(r"__mutmut_\d+$", node.name)
               for child in ast.walk(node)}
    return {node.value for node in ast.walk(tree)
            if id(node) not in skipped and isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"[A-Z]+(?:_[A-Z]+)+", node.value)}


def normalise(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def operations():
    return [(path, method, operation) for path, item in SPEC["paths"].items() for method, operation in item.items()]


def test_the_api_routes_in_app_and_in_the_spec_are_the_same_set_without_pages_or_preflights():
    in_app = {(normalise(path), method.lower()) for path, methods in app_module.app.routes.items()
              for method in methods if method != "OPTIONS" and normalise(path) not in PAGES}
    in_spec = {(normalise(path), method) for path, method, _ in operations()}

    assert in_app == in_spec
    assert all(method != "options" for _, method in in_spec)


def test_every_api_path_of_the_spec_answers_its_preflight_in_the_app():
    preflighted = {normalise(path) for path, methods in app_module.app.routes.items() if "OPTIONS" in methods}

    assert preflighted == {normalise(path) for path in SPEC["paths"]}


def test_the_error_code_enum_is_every_code_the_server_and_its_gateway_send():
    def subclasses(kind):
        return [kind, *(sub for child in kind.__subclasses__() for sub in subclasses(child))]

    sources = (ROOT / "chalicelib" / "http.py").read_text()
    from_classes = {kind.code for kind in subclasses(errors.UploadError)}
    # http.py's own literals: the fallback for Chalice's unnamed errors and the refused preflight.
    from_http = error_code_literals(sources)
    from_gateway = {json.loads(answer["responseTemplates"]["application/json"])["error"]["code"]
                    for answer in gateway_responses().values()}
    assert SPEC["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"] == {
        "$ref": "#/components/schemas/ErrorCode"}
    enum = SPEC["components"]["schemas"]["ErrorCode"]["enum"]

    assert set(CHALICE_CODES.values()) <= from_http and "ORIGIN_NOT_ALLOWED" in from_http
    assert sorted(enum) == sorted(from_classes | from_http | from_gateway)


def test_every_error_status_in_the_spec_uses_the_error_body():
    for path, method, operation in operations():
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema in ({"$ref": "#/components/schemas/Error"},
                                  {"oneOf": [{"$ref": "#/components/schemas/Health"},
                                             {"$ref": "#/components/schemas/Error"}]}), (path, method, status)


def test_the_session_token_is_an_api_key_scheme_on_every_job_route_and_never_a_parameter():
    assert SPEC["components"]["securitySchemes"]["sessionToken"] == {
        "type": "apiKey", "in": "header", "name": "X-Session-Token",
        "description": "The upload's session token (UploadCreated.sessionToken): a UUID, valid for that upload only."}
    secured = {(path, method) for path, method, operation in operations()
               if {"sessionToken": []} in operation.get("security", [])}
    assert secured == {(p, m) for p, m, _ in operations() if "{uploadId}" in p}
    assert not [p for _, _, op in operations() for p in op.get("parameters", [])
                if p["name"] in ("X-Session-Token", "X-View-Token")]


def test_the_view_token_is_a_second_api_key_scheme_accepted_by_the_status_route_only():
    assert SPEC["components"]["securitySchemes"]["viewToken"] == {
        "type": "apiKey", "in": "header", "name": "X-View-Token",
        "description": "The read-only view credential of the emailed link (its fragment's `view`): opens getUpload "
                       "only, until the results' retention ends."}
    viewable = {(path, method) for path, method, operation in operations()
                if {"viewToken": []} in operation.get("security", [])}
    assert viewable == {("/api/upload/{uploadId}", "get")}
    assert SPEC["paths"]["/api/upload/{uploadId}"]["get"]["security"] == [{"sessionToken": []}, {"viewToken": []}]


def test_ids_and_file_types_are_as_narrow_as_the_domain_mints_them():
    pattern = re.compile(SPEC["components"]["schemas"]["UploadCreated"]["properties"]["uploadId"]["pattern"])
    schemas = SPEC["components"]["schemas"]
    for _ in range(20):
        assert pattern.fullmatch(domain.new_upload_id())
    assert pattern.pattern == f"^[a-z][a-z0-9]{{{domain.UPLOAD_ID_LENGTH - 1}}}$"
    assert not pattern.fullmatch("limits")
    assert {p["schema"]["pattern"] for _, _, op in operations() for p in op.get("parameters", [])
            if p["name"] == "uploadId"} == {pattern.pattern}
    assert schemas["JobStatus"]["properties"]["jobId"]["pattern"] == pattern.pattern
    file_type = {"$ref": "#/components/schemas/FileType"}
    assert schemas["FileType"]["enum"] == list(domain.FILE_TYPES)
    assert (schemas["JobStatus"]["properties"]["fileType"], schemas["CreateUpload"]["properties"]["fileType"],
            schemas["Limits"]["properties"]["fileTypes"]["items"]) == (file_type, file_type, file_type)


def test_retry_after_is_the_delay_seconds_string_the_server_sends():
    from chalicelib.http import error_response

    schema = SPEC["paths"]["/api/upload"]["post"]["responses"]["429"]["headers"]["Retry-After"]["schema"]
    sent = error_response(errors.RateLimited(90)).headers["Retry-After"]

    assert schema == {"type": "string", "pattern": "^[1-9][0-9]*$"}
    assert re.fullmatch(schema["pattern"], sent) and sent == "90"


def test_the_servers_are_make_dev_and_the_stage_url_template():
    assert [server["url"] for server in SPEC["servers"]] == [
        "http://127.0.0.1:8000", "https://{apiId}.execute-api.{region}.amazonaws.com/{stage}"]
    assert SPEC["servers"][1]["variables"]["stage"]["default"] == "api"


def test_the_create_states_the_presigned_put_s_rules():
    description = SPEC["paths"]["/api/upload"]["post"]["description"]

    for rule in ("exactly the declared `Content-Type: <fileType>`", "exactly `fileSize` bytes", "403",
                 "`expiresAt`", "UPLOAD_URL_TTL_SECONDS"):
        assert rule in description
