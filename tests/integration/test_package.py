"""The packaged production template, the placeholder-origin refusal and the dry-run deploy plan."""

import json
import re
import subprocess
import sys

import pytest

from ops.package import ACCESS_LOG_FORMAT, ROOT, deployed_version, function_names, stage_config

REAL_ORIGIN = "https://app.3d-ultra.com"


def run(*argv):
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def deploy_dry_run(tmp_path_factory):
    """One dry-run deploy; it packages into a private directory, which the template checks read."""
    build = tmp_path_factory.mktemp("build")
    result = run("-m", "ops.deploy", "--stage", "prod", "--region", "eu-central-1", "--artifact-bucket",
                 "3d-ultra-artifacts", "--alarm-email", "oncall@3d-ultra.com", "--allowed-origins", REAL_ORIGIN,
                 "--build-dir", str(build), "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    return build, result


@pytest.fixture(scope="module")
def template(deploy_dry_run):
    build, _ = deploy_dry_run
    return json.loads((build / "sam.json").read_text())


def resources_of(template, kind):
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def test_every_function_has_a_fixed_name_and_a_log_group_with_retention(template):
    functions = resources_of(template, "AWS::Serverless::Function")
    groups = resources_of(template, "AWS::Logs::LogGroup")

    assert {name: f["FunctionName"] for name, f in functions.items()} == {
        "APIHandler": "three-d-ultra-upload-prod",
        "Migrate": "three-d-ultra-upload-prod-migrate",
        "ExpireAbandoned": "three-d-ultra-upload-prod-expire-abandoned",
        "ProcessJob": "three-d-ultra-upload-prod-process-job",
        "FailUndeliverable": "three-d-ultra-upload-prod-fail-undeliverable",
        "DispatchJobs": "three-d-ultra-upload-prod-dispatch-jobs",
        "HealthCheck": "three-d-ultra-upload-prod-health-check",
    }
    for name, function in functions.items():
        group = groups[function["LoggingConfig"]["LogGroup"]["Ref"]]
        assert group == {"LogGroupName": f"/aws/lambda/{function['FunctionName']}", "RetentionInDays": 30}
    assert groups["ApiAccessLogGroup"]["RetentionInDays"] == 30
    # Kept when the stack is deleted, removed when the first create rolls back (so a retry can create them).
    assert {name: (template["Resources"][name]["DeletionPolicy"], template["Resources"][name]["UpdateReplacePolicy"])
            for name in groups} == {name: ("RetainExceptOnCreate", "Retain") for name in groups}


def test_each_function_reserves_its_own_concurrency(template):
    functions = resources_of(template, "AWS::Serverless::Function")
    api_reserved = stage_config("prod")["lambda_functions"]["api_handler"]["reserved_concurrency"]

    # The health check reserves nothing: starved of concurrency, it stops reporting, which its alarm reports.
    assert {name: f.get("ReservedConcurrentExecutions") for name, f in functions.items()} == {
        "APIHandler": api_reserved, "Migrate": 1, "ExpireAbandoned": 1, "ProcessJob": 10, "FailUndeliverable": 2,
        "DispatchJobs": 1, "HealthCheck": None}
    assert "reserved_concurrency" not in stage_config("prod")


def test_the_api_stage_is_throttled_and_writes_access_logs(template):
    api = template["Resources"]["RestAPI"]["Properties"]

    # No per-method metrics (nothing reads them): the stage's own metrics feed the alarms and the dashboard.
    assert api["MethodSettings"] == [{
        "ResourcePath": "/*", "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"}, "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"}}]
    assert template["Parameters"]["ApiThrottleRate"]["Default"] == 20
    # A burst the stage admits runs within the API function's reserved concurrency, never throttled by Lambda.
    api_reserved = stage_config("prod")["lambda_functions"]["api_handler"]["reserved_concurrency"]
    burst = template["Parameters"]["ApiThrottleBurst"]
    assert (burst["Default"], burst["MaxValue"]) == (api_reserved, api_reserved)
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    # The status is a bare number in the line (the other values may be "-", so they stay strings).
    assert api["AccessLogSetting"]["Format"] == ACCESS_LOG_FORMAT
    assert '"status":$context.status,' in ACCESS_LOG_FORMAT and '"error":"$context.error.responseType"' in (
        ACCESS_LOG_FORMAT)
    # The ids that join it to our lines and Lambda's (the invocation's id), and that the answers carry.
    for field in ('"requestId":"$context.requestId"', '"extendedRequestId":"$context.extendedRequestId"',
                  '"lambdaRequestId":"$context.integration.requestId"'):
        assert field in ACCESS_LOG_FORMAT


def test_the_stage_leaves_api_gateways_account_wide_logging_role_alone(template):
    # One role per account and region serves every API there: the stack neither creates nor overwrites it (the
    # deploy checks one is set before anything changes).
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::ApiGateway::Account" not in kinds
    assert "DependsOn" not in template["Resources"]["RestAPI"]


def test_sam_expands_the_template_into_exactly_one_api_stage(template, monkeypatch):
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://3d-ultra-artifacts/code.zip"  # what `cloudformation package` does
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")  # SAM names ARNs with it; nothing is called
    expanded = transform(packaged, {}, NoManagedPolicies())["Resources"]

    stages = [r["Properties"]["StageName"] for r in expanded.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    stages += [r["Properties"]["StageName"] for r in expanded.values()
               if r["Type"] == "AWS::ApiGateway::Deployment" and "StageName" in r["Properties"]]
    assert stages == ["api"]
    assert template["Globals"] == {"Api": {"OpenApiVersion": "2.0"}}


def test_gateway_errors_carry_cors_headers_and_the_api_error_shape(template):
    responses = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][
        "x-amazon-apigateway-gateway-responses"]

    assert {"DEFAULT_4XX", "DEFAULT_5XX", "THROTTLED"} <= set(responses)
    for response in responses.values():
        headers = response["responseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "method.request.header.origin"
        assert headers["gatewayresponse.header.Vary"] == "'Origin'"
        assert headers["gatewayresponse.header.Access-Control-Expose-Headers"] == (
            "'Retry-After, x-amzn-RequestId, x-amz-apigw-id'")
        assert set(json.loads(response["responseTemplates"]["application/json"])["error"]) == {"code", "message"}
    throttled = responses["THROTTLED"]
    assert throttled["statusCode"] == "429"
    assert throttled["responseParameters"]["gatewayresponse.header.Retry-After"] == "'60'"
    assert json.loads(throttled["responseTemplates"]["application/json"])["error"]["code"] == "RATE_LIMITED"


def watched(alarm):
    """(namespace, metric, dimension values) of each metric an alarm reads."""
    specs = [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m] or [alarm]
    return {(m["Namespace"], m["MetricName"], tuple(json.dumps(d["Value"]) if isinstance(d["Value"], dict)
                                                    else d["Value"] for d in m["Dimensions"])) for m in specs}


def test_alarms_watch_errors_latency_throttling_concurrency_the_health_check_the_sweep_and_migrate(template):
    alarms = resources_of(template, "AWS::CloudWatch::Alarm")
    metrics = set().union(*(watched(a) for a in alarms.values()))

    api, sweep, migrate = ("three-d-ultra-upload-prod", "three-d-ultra-upload-prod-expire-abandoned",
                           "three-d-ultra-upload-prod-migrate")
    assert metrics == {
        ("AWS/ApiGateway", "5XXError", (api, "api")),
        ("AWS/ApiGateway", "Count", (api, "api")),
        ("AWS/ApiGateway", "Latency", (api, "api")),
        ("3DUltra/Upload", "ThrottledRequests", ('{"Ref": "RestAPI"}',)),
        ("3DUltra/Upload", "HealthCheckFailed", ("prod",)),
        ("AWS/Lambda", "Throttles", (api,)),
        ("AWS/Lambda", "ConcurrentExecutions", (api,)),
        ("AWS/Lambda", "DestinationDeliveryFailures", (sweep,)),
        ("AWS/Lambda", "Errors", (migrate,)),
        ("3DUltra/Upload", "SweepHeartbeat", ("prod",)),
        ("3DUltra/Upload", "UnhandledErrors", ("prod",)),
        ("AWS/Lambda", "Errors", (api,)),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", ("three-d-ultra-upload-prod-jobs",)),
        ("AWS/Lambda", "Invocations", ("three-d-ultra-upload-prod-fail-undeliverable",)),
        ("AWS/Lambda", "Errors", ("three-d-ultra-upload-prod-process-job",)),
    }
    # No alarm on the sweep's Errors: a run Lambda's retry mended needs nobody; one whose tries all failed
    # reaches the topic as its failure destination, and two missed runs fire the heartbeat alarm.
    assert ("AWS/Lambda", "Errors", (sweep,)) not in metrics
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())
    assert all(a["AlarmDescription"].count("Act: ") == 1 for a in alarms.values())
    assert alarms["ApiConcurrencyAlarm"]["Threshold"] == 16  # 80% of the API's reserved 20


def value(alarm, period):
    """What one alarm computes for one period: `period` holds each metric's value (by query Id, or "metric" for a
    single-metric alarm), None when CloudWatch has no data. The expressions use IF, FILL, comparisons and
    arithmetic only, which read the same in Python."""
    if "Metrics" not in alarm:
        return period.get("metric")
    [expression] = [m["Expression"] for m in alarm["Metrics"] if m["ReturnData"]]
    ids = {m["Id"]: period.get(m["Id"]) for m in alarm["Metrics"] if "MetricStat" in m}
    if any(v is None for k, v in ids.items() if f"FILL({k}, 0)" not in expression):
        return None
    functions = {"IF": lambda condition, yes, no: yes if condition else no,
                 "FILL": lambda series, default: default if series is None else series}
    return eval(expression, functions, ids)  # noqa: S307 (our own template's expression)


def fires(alarm, periods):
    """Whether the alarm goes to ALARM at the end of `periods` (oldest first), as CloudWatch evaluates it:
    DatapointsToAlarm of the last EvaluationPeriods breach; missing data as TreatMissingData says."""
    compare = {"GreaterThanThreshold": lambda v, t: v > t, "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
               "LessThanThreshold": lambda v, t: v < t}[alarm["ComparisonOperator"]]
    window = periods[-alarm["EvaluationPeriods"]:]
    values = [value(alarm, period) for period in window]
    breaching = [v is not None and compare(v, alarm["Threshold"]) for v in values]
    return sum(breaching) >= alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])


QUIET = {"errors": None, "requests": None, "metric": None}


@pytest.mark.parametrize("alarm, periods, paged", [
    # A night's single failed request is no outage; an outage at low traffic is the absolute count (and the
    # health check); at high traffic the share. A blip of one period pages nobody.
    ("Api5xxAlarm", [{"errors": 1, "requests": 1}] * 2, False),
    ("Api5xxAlarm", [{"errors": 12, "requests": 12}] * 2, True),
    ("Api5xxAlarm", [{"errors": 12, "requests": 12}, QUIET], False),
    ("Api5xxAlarm", [{"errors": 9, "requests": 120}] * 2, True),  # 7.5% of 120
    ("Api5xxAlarm", [{"errors": 9, "requests": 400}] * 2, False),  # 2.3%, and under 10
    ("Api5xxAlarm", [{"errors": 3, "requests": 40}] * 2, False),  # too few requests for a share
    ("Api5xxAlarm", [QUIET] * 2, False),
    ("ApiGatewayThrottlesAlarm", [{"errors": 60, "requests": 3000}] * 2, True),
    ("ApiGatewayThrottlesAlarm", [{"errors": 20, "requests": 3000}] * 2, False),
    # p99 only over enough requests: one cold request at night (init, SSM, Neon waking) is not a slow API.
    ("ApiLatencyP99Alarm", [{"p99": 6000, "requests": 2}] * 3, False),
    ("ApiLatencyP99Alarm", [{"p99": 3500, "requests": 400}] * 3, True),
    ("ApiLatencyP99Alarm", [{"p99": 3500, "requests": 400}] * 2 + [{"p99": 900, "requests": 400}], False),
    # Lambda throttles for 15 minutes in a row, not one burst.
    ("ApiThrottlesAlarm", [{"metric": 0}, {"metric": 0}, {"metric": 4}], False),
    ("ApiThrottlesAlarm", [{"metric": 1}] * 3, True),
    ("ApiUnhandledErrorsAlarm", [{"metric": 1}], True),
    ("ApiErrorsAlarm", [{"metric": 2}], False),
    ("ApiErrorsAlarm", [{"metric": 3}], True),
    # The health check: one failed check (a deploy, a blip) pages nobody; two within 15 minutes do.
    ("HealthCheckAlarm", [{"metric": 0}, {"metric": 1}, {"metric": 0}], False),
    ("HealthCheckAlarm", [{"metric": 1}, {"metric": 0}, {"metric": 1}], True),
    ("SweepHeartbeatAlarm", [{"metric": 1}, {"metric": 0}], False),
    ("SweepHeartbeatAlarm", [{"metric": 0}, {"metric": 0}], True),
])
def test_each_alarm_pages_for_an_outage_and_not_for_a_blip(template, alarm, periods, paged):
    assert fires(template["Resources"][alarm]["Properties"], periods) is paged


@pytest.mark.parametrize("alarm", ["Api5xxAlarm", "ApiGatewayThrottlesAlarm"])
def test_rate_alarms_count_errors_at_any_traffic_and_a_share_over_enough_requests(template, alarm):
    properties = template["Resources"][alarm]["Properties"]
    [expression] = [m for m in properties["Metrics"] if m["ReturnData"]]

    count = {"Api5xxAlarm": 10, "ApiGatewayThrottlesAlarm": 50}[alarm]
    assert expression["Expression"] == (f"IF(FILL(errors, 0) >= {count}, 1, IF(FILL(requests, 0) >= 50, "
                                        "IF(FILL(errors, 0) > 0.05 * FILL(requests, 0), 1, 0), 0))")
    assert (properties["Threshold"], properties["ComparisonOperator"], properties["EvaluationPeriods"],
            properties["DatapointsToAlarm"]) == (1, "GreaterThanOrEqualToThreshold", 2, 2)
    assert {m["Id"]: m["MetricStat"]["Stat"] for m in properties["Metrics"] if "MetricStat" in m} == {
        "errors": "Sum", "requests": "Sum"}


def test_the_health_check_runs_every_five_minutes_inline_and_may_only_write_its_own_log(template):
    resources = template["Resources"]
    function = resources["HealthCheck"]["Properties"]
    role = resources["HealthCheckRole"]["Properties"]
    alarm = resources["HealthCheckAlarm"]["Properties"]

    assert function["InlineCode"] == (ROOT / "ops" / "health_check.py").read_text()
    assert len(function["InlineCode"]) < 4096  # CloudFormation's limit for inline code
    assert function["Events"]["Schedule"]["Properties"]["Schedule"] == "rate(5 minutes)"
    assert function["Environment"]["Variables"]["HEALTH_URL"] == {
        "Fn::Sub": "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/api/health"}
    assert function["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert (function["Runtime"], function["Architectures"]) == (
        resources["APIHandler"]["Properties"]["Runtime"], resources["APIHandler"]["Properties"]["Architectures"])
    [statement] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statement["Resource"] == {"Fn::GetAtt": ["HealthCheckLogGroup", "Arn"]}
    # Quiet on a fresh stack until its first check; a check that stops reporting notifies.
    assert (alarm["TreatMissingData"], alarm["InsufficientDataActions"]) == ("missing", [{"Ref": "AlarmTopic"}])
    assert (alarm["Period"], alarm["Statistic"]) == (300, "Maximum")


def test_the_runbooks_alarm_table_lists_every_alarm_of_the_template(template):
    readme = "".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
    table = readme[readme.index("| alarm | metric |"):]
    table = table[:table.index("\n\n")]
    named = re.findall(r"^ *\| `([a-z0-9-]+)` \|", table, re.M)
    alarms = {a["AlarmName"].removeprefix("three-d-ultra-upload-prod-")
              for a in resources_of(template, "AWS::CloudWatch::Alarm").values()}

    assert sorted(named) == sorted(alarms)


def test_throttling_is_counted_from_the_access_log_not_from_every_4xx(template):
    filters = resources_of(template, "AWS::Logs::MetricFilter")

    assert {name: (f["FilterPattern"], f["MetricTransformations"][0]["MetricName"]) for name, f in filters.items()} == {
        "ThrottledRequestsMetricFilter": ('{ $.error = "THROTTLED" }', "ThrottledRequests"),
        "Responses429MetricFilter": ("{ $.status = 429 }", "Responses429")}
    assert all(f["LogGroupName"] == {"Ref": "ApiAccessLogGroup"} for f in filters.values())
    assert all(f["MetricTransformations"][0]["Dimensions"] == [{"Key": "ApiId", "Value": "$.apiId"}]
               for f in filters.values())


def test_the_missed_sweep_alarm_cannot_fire_on_a_fresh_stack_but_reports_heartbeats_that_stop(template):
    heartbeat = template["Resources"]["SweepHeartbeatAlarm"]["Properties"]

    # A new alarm starts in INSUFFICIENT_DATA; missing data left missing keeps it there (no transition, no
    # message) until the deploy's own sweep run arms it; heartbeats that stop move it back, which notifies.
    assert heartbeat["TreatMissingData"] == "missing"
    assert heartbeat["InsufficientDataActions"] == [{"Ref": "AlarmTopic"}]
    assert (heartbeat["Period"], heartbeat["EvaluationPeriods"]) == (3600, 2)


def test_the_dashboard_shows_traffic_errors_latency_refusals_confirms_the_sweep_and_concurrency(template):
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body)["widgets"]

    assert [w["properties"]["title"] for w in widgets] == [
        "Requests", "4xx by status", "5xx", "Latency p50 / p99 (ms)", "429s (all) and stage throttling",
        "Confirms by status", "Sweep results (hourly)", "Concurrency (max)", "Function errors and throttles",
        "Health check: failed (1) and ms"]
    assert "SOURCE '/aws/apigateway/three-d-ultra-upload-prod-access'" in widgets[1]["properties"]["query"]
    assert [m[-1] for m in widgets[3]["properties"]["metrics"]] == [{"stat": "p50"}, {"stat": "p99"}]


def test_each_function_reads_only_its_own_parameters_and_writes_only_its_own_log_group(template):
    resources = template["Resources"]
    grants = {}
    for logical_id in ("APIHandler", "Migrate", "ExpireAbandoned", "ProcessJob", "DispatchJobs", "FailUndeliverable"):
        function = resources[logical_id]["Properties"]
        role = resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
        statements = [st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]]
        actions = {a for st in statements for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])}
        [logs] = [st for st in statements if st.get("Sid") == "OwnLogGroup"]
        [ssm] = [st for st in statements if st.get("Sid") == "OwnSecrets"]
        grants[logical_id] = sorted(r["Fn::Sub"].rsplit("/", 1)[1] for r in ssm["Resource"])
        named = sorted(v.rsplit("/", 1)[1] for k, v in function["Environment"]["Variables"].items()
                       if k.endswith("_SSM_PARAMETER"))
        assert logs["Resource"] == {"Fn::GetAtt": [f"{logical_id}LogGroup", "Arn"]}
        assert "logs:CreateLogGroup" not in actions and not any("*" in a for a in actions)
        # The function's environment names its parameters; the role reads those and no others.
        if logical_id != "Migrate":
            assert named == grants[logical_id]

    assert grants == {
        "APIHandler": ["database-url", "digest-secret", "posthog-api-key", "r2-access-key-id", "r2-endpoint-url",
                       "r2-secret-access-key"],
        "ExpireAbandoned": ["database-url", "digest-secret", "posthog-api-key", "r2-access-key-id",
                            "r2-endpoint-url", "r2-secret-access-key"],
        "Migrate": ["database-url-direct", "posthog-api-key"],
        # The worker and the dispatcher speak to the processing service; the dead-letter handler only fails jobs.
        "ProcessJob": ["database-url", "digest-secret", "posthog-api-key", "processing-api-token",
                       "r2-access-key-id", "r2-endpoint-url", "r2-secret-access-key"],
        "DispatchJobs": ["database-url", "digest-secret", "posthog-api-key", "processing-api-token",
                         "r2-access-key-id", "r2-endpoint-url", "r2-secret-access-key"],
        "FailUndeliverable": ["database-url", "digest-secret", "posthog-api-key", "r2-access-key-id",
                              "r2-endpoint-url", "r2-secret-access-key"],
    }
    migrate_variables = resources["Migrate"]["Properties"]["Environment"]["Variables"]
    assert migrate_variables["DATABASE_URL_SSM_PARAMETER"] == "/3d-ultra/prod/database-url-direct"


def test_a_failed_sweep_lands_on_the_alarm_topic(template):
    sweep = template["Resources"]["ExpireAbandoned"]["Properties"]
    role = template["Resources"]["ExpireAbandonedRole"]["Properties"]

    assert sweep["EventInvokeConfig"]["DestinationConfig"]["OnFailure"] == {
        "Type": "SNS", "Destination": {"Ref": "AlarmTopic"}}
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "AlarmTopic"}} in statements


def test_the_template_names_the_version_and_the_api_url_and_holds_no_secret(template, deploy_dry_run):
    build, _ = deploy_dry_run
    variables = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]

    assert (variables["VERSION"], variables["STAGE"]) == (deployed_version(), "prod")
    assert REAL_ORIGIN in variables.values()
    assert template["Outputs"]["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api/"}
    assert not {"DATABASE_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "POSTHOG_API_KEY",
                "DIGEST_SECRET"} & set(variables)
    assert variables["DIGEST_SECRET_SSM_PARAMETER"] == "/3d-ultra/prod/digest-secret"
    scan = run("-m", "ops.secrets_scan", str(build / "sam.json"))
    assert scan.returncode == 0, scan.stdout
    lint = subprocess.run([str((ROOT / ".venv" / "bin" / "cfn-lint")), str(build / "sam.json")],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_the_dry_run_prints_the_exact_aws_calls_in_order(deploy_dry_run):
    build, result = deploy_dry_run
    version = deployed_version()
    prefix = f"three-d-ultra-upload/prod/{version}"
    names = function_names("prod")

    commands = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ") and "aws " in line
                or line.startswith("+ DATABASE_URL")]
    assert commands == [
        "aws lambda get-account-settings --region eu-central-1 --query AccountLimit --output json",
        *[f"aws lambda get-function-concurrency --region eu-central-1 --function-name {name} --output json"
          for name in names.values()],
        "aws apigateway get-account --region eu-central-1 --query cloudwatchRoleArn --output text",
        "aws s3api head-bucket --region eu-central-1 --bucket 3d-ultra-artifacts",
        "aws ssm get-parameters --region eu-central-1 --names /3d-ultra/prod/database-url"
        " /3d-ultra/prod/database-url-direct /3d-ultra/prod/digest-secret /3d-ultra/prod/posthog-api-key"
        " /3d-ultra/prod/processing-api-token /3d-ultra/prod/r2-access-key-id /3d-ultra/prod/r2-endpoint-url /3d-ultra/prod/r2-secret-access-key"
        " --query InvalidParameters --output json",
        "aws ssm get-parameter --region eu-central-1 --name /3d-ultra/prod/database-url-direct --with-decryption"
        " --query Parameter.Value --output text",
        f"DATABASE_URL=<DirectDatabaseUrl> {sys.executable} -m chalicelib.migrate",
        f"aws cloudformation package --region eu-central-1 --template-file {build}/sam.json"
        f" --s3-bucket 3d-ultra-artifacts --s3-prefix {prefix} --use-json --output-template-file {build}/packaged.json",
        f"aws s3 cp {build}/packaged.json s3://3d-ultra-artifacts/{prefix}/packaged.json --region eu-central-1",
        f"aws cloudformation deploy --region eu-central-1 --stack-name three-d-ultra-upload-prod"
        f" --template-file {build}/packaged.json --s3-bucket 3d-ultra-artifacts --s3-prefix {prefix}"
        " --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset"
        " --parameter-overrides ApiThrottleRate=20 ApiThrottleBurst=20 AlarmEmail=oncall@3d-ultra.com",
        "aws cloudformation describe-stacks --region eu-central-1 --stack-name three-d-ultra-upload-prod"
        " --query 'Stacks[0].Outputs[?OutputKey==`ApiUrl`].OutputValue' --output text",
        # Sent once (no retry by the CLI), waited for the function's 300 s timeout plus its start-up.
        f"AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard aws lambda invoke --region eu-central-1 --function-name"
        f" {names['Migrate']} --payload fileb://{build}/empty-event.json --cli-read-timeout 360"
        f" --cli-connect-timeout 10 {build}/migrate-response.json",
        f"AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard aws lambda invoke --region eu-central-1 --function-name"
        f" {names['ExpireAbandoned']} --payload fileb://{build}/empty-event.json --cli-read-timeout 360"
        f" --cli-connect-timeout 10 {build}/sweep-response.json",
    ]
    assert result.stdout.index("chalicelib.migrate") < result.stdout.index("cloudformation deploy")
    assert "--cli-binary-format" not in result.stdout  # CLI v2 only: v1 refuses it (exit 255)


def test_a_rollback_redeploys_a_kept_template_without_migrating(tmp_path):
    result = run("-m", "ops.deploy", "--region", "eu-central-1", "--artifact-bucket", "3d-ultra-artifacts",
                 "--rollback", "v1.4.0", "--build-dir", str(tmp_path), "--dry-run")

    assert result.returncode == 0, result.stderr
    commands = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ aws ")]
    checks = 1 + len(function_names("prod")) + 2  # account settings, each reservation, API Gateway's role, bucket
    assert commands[checks:checks + 2] == [
        f"aws s3 cp s3://3d-ultra-artifacts/three-d-ultra-upload/prod/v1.4.0/packaged.json"
        f" {tmp_path}/rollback-v1.4.0.json --region eu-central-1",
        f"aws cloudformation deploy --region eu-central-1 --stack-name three-d-ultra-upload-prod"
        f" --template-file {tmp_path}/rollback-v1.4.0.json --s3-bucket 3d-ultra-artifacts"
        " --s3-prefix three-d-ultra-upload/prod/v1.4.0 --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset",
    ]
    assert "chalicelib.migrate" not in result.stdout and "lambda invoke" not in result.stdout
    # The health check after a rollback expects the version rolled back to.
    assert result.stdout.rstrip().endswith("+ curl -fsS <ApiUrl>api/health  # version v1.4.0")


def test_a_deploy_with_bad_parameters_stops_before_packaging(tmp_path):
    result = run("-m", "ops.deploy", "--region", "Frankfurt", "--artifact-bucket", "No_Such Bucket",
                 "--build-dir", str(tmp_path), "--dry-run")

    assert result.returncode == 2
    assert "--region 'Frankfurt' is not an AWS region name" in result.stderr
    assert "--artifact-bucket 'No_Such Bucket' is not an S3 bucket name" in result.stderr
    assert "--alarm-email is required" in result.stderr
    assert not (tmp_path / "sam.json").exists()


@pytest.mark.parametrize("origins", ["https://app.3d-ultra.example", "http://localhost:3000",
                                     f"{REAL_ORIGIN},http://127.0.0.1:8000"])
def test_packaging_prod_with_placeholder_or_local_origins_is_refused(tmp_path, origins):
    result = run("-m", "ops.deploy", "--region", "eu-central-1", "--artifact-bucket", "3d-ultra-artifacts",
                 "--alarm-email", "oncall@3d-ultra.com", "--allowed-origins", origins, "--build-dir", str(tmp_path),
                 "--dry-run")

    assert result.returncode == 2
    assert "deploy stopped: stage prod allows placeholder or local origin(s)" in result.stderr
    assert not (tmp_path / "sam.json").exists()


def test_the_repository_prod_config_is_refused_unless_the_build_is_marked_for_checking_only(tmp_path):
    from ops.deploy import DeployError, check_build
    from ops.package import PackageRefused, package

    with pytest.raises(PackageRefused, match="placeholder or local origin"):
        package("prod", out=tmp_path)
    package("prod", allow_placeholder_origins=True, out=tmp_path)
    with pytest.raises(DeployError, match="packaged for checking, not for deploying"):
        check_build(tmp_path, "prod")


def test_the_limits_route_is_its_own_literal_resource_beside_the_upload_id(template):
    # API Gateway matches a literal path segment before a {parameter} one, so both resources must exist.
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]

    assert set(paths["/api/upload/limits"]) == {"get", "options"}
    assert set(paths["/api/upload/{upload_id}"]) == {"get", "delete", "options"}


def test_the_hand_off_queue_redrives_after_five_receives_and_only_the_right_functions_touch_it(template):
    resources = template["Resources"]
    queue = resources["JobsQueue"]["Properties"]
    worker = resources["ProcessJob"]["Properties"]

    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 5}
    assert queue["VisibilityTimeout"] == 6 * worker["Timeout"]
    assert worker["Events"]["ProcessJobSqsEventSource"]["Properties"] == {
        "Queue": {"Fn::GetAtt": ["JobsQueue", "Arn"]}, "BatchSize": 1, "MaximumBatchingWindowInSeconds": 0,
        "ScalingConfig": {"MaximumConcurrency": worker["ReservedConcurrentExecutions"]}}
    sqs_actions = {}
    for logical_id, function in resources_of(template, "AWS::Serverless::Function").items():
        role = resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
        for policy in role["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if any(action.startswith("sqs:") for action in actions):
                    sqs_actions[logical_id] = (sorted(actions), statement["Resource"])
    assert sqs_actions == {
        "APIHandler": (["sqs:SendMessage"], [{"Fn::GetAtt": ["JobsQueue", "Arn"]}]),
        "DispatchJobs": (["sqs:SendMessage"], [{"Fn::GetAtt": ["JobsQueue", "Arn"]}]),
        "ProcessJob": (["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                        "sqs:ReceiveMessage", "sqs:SendMessage"], [{"Fn::GetAtt": ["JobsQueue", "Arn"]}]),
        "FailUndeliverable": (["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                               "sqs:ReceiveMessage"], [{"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}]),
    }
    assert {name: resources[name]["Properties"]["Environment"]["Variables"].get("JOBS_QUEUE_URL")
            for name in ("APIHandler", "ProcessJob", "DispatchJobs", "FailUndeliverable")} == {
        "APIHandler": {"Ref": "JobsQueue"}, "ProcessJob": {"Ref": "JobsQueue"}, "DispatchJobs": {"Ref": "JobsQueue"},
        "FailUndeliverable": None}
    assert "PROCESSING_MODEL_VERSION" not in resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert {"JobsQueueAgeAlarm", "JobsDeadLettersAlarm", "ProcessJobErrorsAlarm"} <= set(resources)


def test_the_worker_emails_through_its_ses_configuration_set_linking_to_the_front_ends_origin(template):
    resources = template["Resources"]
    worker = resources["ProcessJob"]["Properties"]["Environment"]["Variables"]
    role = resources[resources["ProcessJob"]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
    [grant] = [policy for policy in role["Policies"] if policy["PolicyName"] == "SendJobEmail"]

    api = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert worker["FRONTEND_URL"] == api["ALLOWED_ORIGINS"].split(",")[0]
    assert resources["EmailConfigurationSet"]["Properties"] == {"Name": worker["SES_CONFIGURATION_SET"]}
    assert grant["PolicyDocument"]["Statement"][0]["Action"] == "ses:SendEmail"
    assert "EMAIL_FROM" not in resources["APIHandler"]["Properties"]["Environment"]["Variables"]
