"""The packager's checks that need no build: origins, runtime warning, the migrate invocation check."""

import json
from pathlib import Path

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


def account(unreserved, total=1000):
    return json.dumps({"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved})


def test_the_concurrency_check_reads_what_stays_unreserved_after_the_functions_reserve_theirs():
    from ops.deploy import check_account_concurrency, reserved_concurrency
    from ops.package import CONFIG_NAMES, stage_config

    needed = reserved_concurrency("prod")
    functions = stage_config("prod")["lambda_functions"]
    none_yet = ["null"] * len(CONFIG_NAMES)
    held = [json.dumps({"ReservedConcurrentExecutions": functions[name]["reserved_concurrency"]})
            if functions[name].get("reserved_concurrency") else "{}" for name in CONFIG_NAMES.values()]
    assert needed == 35
    # A new account (10 in all): nothing reserved yet.
    with pytest.raises(DeployError, match=rf"has 10 of its 10 .* reserve 0 now and {needed} once deployed, which "
                                          rf"would leave {10 - needed}, and Lambda keeps at least 100 unreserved"):
        check_account_concurrency(account(10, 10), none_yet, "prod")
    # Other functions in the account reserve 900 of 1000: the account's total alone would have passed.
    with pytest.raises(DeployError, match=f"which would leave {100 - needed}"):
        check_account_concurrency(account(100), none_yet, "prod")
    # A redeploy: the functions' reservations are held already and count back in.
    check_account_concurrency(account(100), held, "prod")
    # A function that exists without a reservation answers {}.
    check_account_concurrency(account(100 + needed), ["{}"] * len(CONFIG_NAMES), "prod")


def test_the_stage_burst_stays_within_the_api_functions_reserved_concurrency():
    from ops.deploy import check_parameters

    common = dict(stage="prod", region="eu-central-1", bucket="3d-ultra-artifacts", alarm_email="a@3d-ultra.com")
    check_parameters(**common, throttle_rate=20, throttle_burst=None)  # the default burst: the reservation, 20
    check_parameters(**common, throttle_rate=10, throttle_burst=20)
    with pytest.raises(DeployError, match=r"--throttle-burst 100 exceeds the API function's reserved concurrency "
                                          r"\(20\): a burst the stage admits would be throttled by Lambda"):
        check_parameters(**common, throttle_rate=50, throttle_burst=100)
    with pytest.raises(DeployError, match="a burst no smaller than the rate"):
        check_parameters(**common, throttle_rate=30, throttle_burst=None)


@pytest.mark.parametrize("answer", ["None", "", "null"])
def test_a_region_without_api_gateways_logging_role_is_refused(answer):
    from ops.deploy import check_api_gateway_role

    with pytest.raises(DeployError, match="API Gateway has no CloudWatch Logs role in eu-central-1"):
        check_api_gateway_role(answer, "eu-central-1")
    check_api_gateway_role("arn:aws:iam::123456789012:role/apigateway-cloudwatch", "eu-central-1")


def test_each_invocation_waits_as_long_as_its_function_may_run():
    from ops.deploy import INVOKE_READ_MARGIN_SECONDS, invoke_step
    from ops.package import function_timeout

    assert (function_timeout("prod", "Migrate"), function_timeout("prod", "ExpireAbandoned"),
            function_timeout("prod", "APIHandler"), function_timeout("dev", "APIHandler")) == (300, 300, 15, 60)
    step = invoke_step("run", "f", "eu-central-1", Path("/b/r.json"), capture="R", timeout_seconds=300)
    assert step.argv[step.argv.index("--cli-read-timeout") + 1] == str(300 + INVOKE_READ_MARGIN_SECONDS)
    assert step.shown().startswith("AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard aws lambda invoke ")
    assert "--cli-binary-format" not in step.argv and "fileb:///b/empty-event.json" in step.argv
    assert step.writes == {"/b/empty-event.json": "{}"}
