"""The OpenAPI document describes exactly the routes the app has."""

import json
import re
from pathlib import Path

import app as app_module

SPEC = json.loads((Path(app_module.__file__).parent / "chalicelib" / "openapi.json").read_text())


def normalise(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_the_routes_in_app_and_in_the_spec_are_the_same_set():
    in_app = {(normalise(path), method.lower()) for path, methods in app_module.app.routes.items()
              for method in methods}
    in_spec = {(normalise(path), method) for path, item in SPEC["paths"].items() for method in item}

    assert in_app == in_spec


def test_every_error_status_in_the_spec_uses_the_error_body():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and "application/json" in response.get("content", {}):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema in ({"$ref": "#/components/schemas/Error"},
                                      {"$ref": "#/components/schemas/Health"},
                                      {"oneOf": [{"$ref": "#/components/schemas/Health"},
                                                 {"$ref": "#/components/schemas/Error"}]}), (path, method, status)
