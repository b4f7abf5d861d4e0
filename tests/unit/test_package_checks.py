"""The packager's checks that need no build: origins, runtime warning, the migrate invocation check."""

import json

import pytest

from ops.deploy import DeployError, check_build, check_function_error
from ops.package import PackageRefused, check_origins, placeholder_origins, runtime_notes


def test_placeholder_and_local_origins_are_named_and_real_ones_pass():
    origins = ["https://app.3d-ultra.com", "https://app.3d-ultra.example", "http://localhost:3000",
               "http://127.0.0.1:8000", "https://www.3d-ultra.com"]

    assert placeholder_origins(origins) == ["https://app.3d-ultra.example", "http://localhost:3000",
                                            "http://127.0.0.1:8000"]


def test_only_the_prod_stage_is_held_to_real_origins_and_the_list_setting_wins():
    check_origins("dev", {"ALLOWED_ORIGIN": "http://localhost:8000"})
    check_origins("prod", {"ALLOWED_ORIGINS": "https://app.3d-ultra.com,https://3d-ultra.com",
                           "ALLOWED_ORIGIN": "https://app.3d-ultra.example"})
    with pytest.raises(PackageRefused, match=r"origin\(s\) https://app.3d-ultra.example:"):
        check_origins("prod", {"ALLOWED_ORIGIN": "https://app.3d-ultra.example"})
    with pytest.raises(PackageRefused, match="sets no ALLOWED_ORIGINS"):
        check_origins("prod", {})


@pytest.mark.parametrize("runtime, warned", [("python3.11", True), ("python3.13", False)])
def test_an_amazon_linux_2_runtime_is_warned_about_with_its_dates(runtime, warned):
    template = {"Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": runtime}}}}

    name, warnings = runtime_notes(template)

    assert name == runtime
    assert bool(warnings) is warned
    if warned:
        assert "2026-06-30" in warnings[0] and "2027-06-30" in warnings[0]
        assert "make package PYTHON=python3.13" in warnings[0]


def test_a_migrate_invocation_that_raised_stops_the_deploy_although_the_cli_exited_0():
    check_function_error(json.dumps({"StatusCode": 200, "ExecutedVersion": "$LATEST"}))
    with pytest.raises(DeployError, match=r"the migrate function failed \(Unhandled\)"):
        check_function_error(json.dumps({"StatusCode": 200, "FunctionError": "Unhandled"}))


def test_a_build_naming_an_ssm_parameter_its_functions_may_not_read_is_refused(tmp_path):
    names = {"APIHandler": "three-d-ultra-upload-prod", "Migrate": "three-d-ultra-upload-prod-migrate",
             "ExpireAbandoned": "three-d-ultra-upload-prod-expire-abandoned"}
    variables = {"DATABASE_URL_SSM_PARAMETER": "/3d-ultra/staging/database-url"}
    (tmp_path / "package.json").write_text(json.dumps({"stage": "prod", "version": "v1", "placeholderOrigins": False}))
    (tmp_path / "sam.json").write_text(json.dumps({"Resources": {
        logical: {"Properties": {"FunctionName": name, "Environment": {"Variables": variables}}}
        for logical, name in names.items()}}))

    with pytest.raises(DeployError, match="/3d-ultra/staging/database-url is outside /3d-ultra/prod/"):
        check_build(tmp_path, "prod")
