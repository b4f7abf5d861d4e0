"""`make package`: `chalice package` a stage into build/<stage>, add the operations resources, lint and scan.

Chalice writes the functions, their roles and the REST API. What an operator needs around them is merged in
here (`add_operations`): fixed function names, log groups with retention, API access logs, stage throttling,
gateway responses that browsers can read, reserved concurrency, alarms to an SNS topic, an on-failure
destination for the hourly sweep, and the API URL as a stack output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
APP_NAME = "three-d-ultra-upload"
METRICS_NAMESPACE = "3DUltra/Upload"  # also in chalicelib/metrics.py, which emits into it
LOG_RETENTION_DAYS = 30
# Lambda runtimes on Amazon Linux 2 and what AWS has said about them.
AMAZON_LINUX_2_RUNTIMES = {"python3.8", "python3.9", "python3.10", "python3.11"}
AL2_WARNING = (
    "{runtime} runs on Amazon Linux 2, whose end of life was 2026-06-30 (only critical patches since); Lambda "
    "deprecates {runtime} on 2027-06-30 (create blocked 2027-07-31, update 2027-08-31). Package with a 3.13 "
    "interpreter for python3.13 on Amazon Linux 2023: install Python 3.13 (the Makefile finds it on PATH or "
    "under pyenv), or name it: make clean && make package PYTHON=python3.13"
)
# Gateway responses are API Gateway's own errors (throttled, too large, unknown route, integration timeout).
# They cannot match an origin list, so they reflect the caller's Origin: without credentials that exposes no
# more than `*` would, the bodies carry no data, and `Vary: Origin` keeps caches from mixing origins.
GATEWAY_CORS_HEADERS = {
    "gatewayresponse.header.Access-Control-Allow-Origin": "method.request.header.origin",
    # Retry-After for a 429, and API Gateway's ids of the request (which it sends on every answer) for an error
    # report; the same list as chalicelib/http.py's.
    "gatewayresponse.header.Access-Control-Expose-Headers": "'Retry-After, x-amzn-RequestId, x-amz-apigw-id'",
    "gatewayresponse.header.Vary": "'Origin'",
}


# API Gateway's access log line, one JSON object. `status` is written bare (a number): CloudWatch Logs compares
# `{ $.status = 429 }` as a number only against a JSON number. The other values may be "-" when empty (an
# integration status for a request that never reached the function), so they stay quoted. Three ids join it to
# the other logs: `requestId` (x-amzn-RequestId; a client may choose it), `extendedRequestId` (x-amz-apigw-id,
# always API Gateway's own) and `lambdaRequestId`, the invocation's, which Lambda's own START/END/REPORT and
# "Task timed out" lines and ours carry (so a request that timed out can be followed too).
ACCESS_LOG_FIELDS = (
    ("requestId", "$context.requestId"), ("extendedRequestId", "$context.extendedRequestId"),
    ("lambdaRequestId", "$context.integration.requestId"), ("apiId", "$context.apiId"),
    ("ip", "$context.identity.sourceIp"), ("requestTime", "$context.requestTime"),
    ("method", "$context.httpMethod"), ("route", "$context.resourcePath"), ("status", "$context.status"),
    ("responseLength", "$context.responseLength"), ("latencyMs", "$context.responseLatency"),
    ("integrationStatus", "$context.integrationStatus"), ("error", "$context.error.responseType"),
)
NUMERIC_ACCESS_LOG_FIELDS = {"status"}
ACCESS_LOG_FORMAT = "{" + ",".join(
    f'"{name}":{value}' if name in NUMERIC_ACCESS_LOG_FIELDS else f'"{name}":"{value}"'
    for name, value in ACCESS_LOG_FIELDS) + "}"


def render_access_log(values: dict[str, str]) -> str:
    """An access-log line as API Gateway writes one: each `$context` variable of the format replaced by its value
    as text, as is ("-" when it has none). The local stand-in (devstack/apigw.py) writes its lines with it."""
    line = ACCESS_LOG_FORMAT
    for _, variable in sorted(ACCESS_LOG_FIELDS, key=lambda field: len(field[1]), reverse=True):
        line = line.replace(variable, str(values.get(variable) or "-"))
    return line


# Counted from the access log: what API Gateway itself refused (its stage throttle: error type THROTTLED) and
# every 429, whoever answered it (the stage's throttle or our per-client limits).
ACCESS_LOG_METRICS = {"ThrottledRequests": '{ $.error = "THROTTLED" }', "Responses429": "{ $.status = 429 }"}
# A rate alarm needs enough requests for its share to mean something: below this many in a period only its
# absolute count can fire it. A latency percentile is judged only over this many requests too.
MIN_REQUESTS_FOR_RATE_ALARMS = 50
# The synthetic check of /api/health: how often, and how long one check waits (more than a cold start with
# Neon waking from scale-to-zero, which the API's 5 s database timeout bounds).
HEALTH_CHECK_MINUTES = 5
HEALTH_CHECK_TIMEOUT_SECONDS = 10
# .chalice/config.json's name for each function's section under lambda_functions.
HEALTH_CHECK_SOURCE = Path(__file__).with_name("health_check.py")
CONFIG_NAMES = {"APIHandler": "api_handler", "Migrate": "migrate", "ExpireAbandoned": "expire-abandoned",
                "ProcessJob": "process-job", "FailUndeliverable": "fail-undeliverable", "DispatchJobs": "dispatch-jobs"}


class PackageRefused(RuntimeError):
    """The stage's configuration must not be packaged for production as it is."""


def stage_config(stage: str) -> dict:
    """The stage's section of .chalice/config.json."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return config["stages"][stage]


def stage_environment(stage: str) -> dict[str, str]:
    """The stage's environment variables from .chalice/config.json.

    Packaging imports app.py, which reads and validates its settings at import (ALLOWED_ORIGINS among them), so
    the packager needs the same values the function will have.
    """
    return stage_config(stage).get("environment_variables", {})


def allowed_origins(environment: dict[str, str]) -> list[str]:
    """ALLOWED_ORIGINS (comma-separated), else ALLOWED_ORIGIN, as a list."""
    raw = environment.get("ALLOWED_ORIGINS") or environment.get("ALLOWED_ORIGIN") or ""
    return [origin.strip() for origin in raw.split(",") if origin.strip()]


def placeholder_origins(origins: list[str]) -> list[str]:
    """The origins no production front end can have: reserved example domains, localhost and loopback."""
    bad = []
    for origin in origins:
        host = (urlsplit(origin).hostname or "").lower()
        if (host.endswith(".example") or host == "example" or host in ("localhost", "127.0.0.1", "::1", "0.0.0.0")
                or host.endswith(".localhost") or host.startswith("127.") or not host):
            bad.append(origin)
    return bad


def check_origins(stage: str, environment: dict[str, str]) -> None:
    """Refuse a prod stage whose allowed origins are placeholders or local: CORS would lock the real site out."""
    if stage != "prod":
        return
    origins = allowed_origins(environment)
    if not origins:
        raise PackageRefused("stage prod sets no ALLOWED_ORIGINS")
    bad = placeholder_origins(origins)
    if bad:
        raise PackageRefused(
            f"stage prod allows placeholder or local origin(s) {', '.join(bad)}: set the front end's real "
            "origin(s) in ALLOWED_ORIGINS in .chalice/config.json (or pass --allow-placeholder-origins for a "
            "build that is only checked, never deployed)")


def runtime_notes(template: dict) -> tuple[str, list[str]]:
    """The template's Lambda runtime and warnings about it."""
    runtimes = {r["Properties"].get("Runtime") for r in template["Resources"].values()
                if r["Type"] == "AWS::Serverless::Function"}
    runtime = ", ".join(sorted(str(r) for r in runtimes))
    warnings = [AL2_WARNING.format(runtime=r) for r in sorted(runtimes & AMAZON_LINUX_2_RUNTIMES)]
    return runtime, warnings


def deployed_version() -> str:
    """`git describe` of the working tree: named in /api/health and the logs of the deployed functions."""
    result = subprocess.run(["git", "describe", "--tags", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def function_timeout(stage: str, logical_id: str) -> int:
    """The function's timeout in seconds, as Chalice packages it (its own, else the stage's, else 60)."""
    config = stage_config(stage)
    own = config.get("lambda_functions", {}).get(CONFIG_NAMES[logical_id], {})
    return int(own.get("lambda_timeout") or config.get("lambda_timeout") or 60)


def api_reserved_concurrency(stage: str) -> int | None:
    """What the API function reserves: the most requests it runs at once."""
    return stage_config(stage).get("lambda_functions", {}).get(CONFIG_NAMES["APIHandler"], {}).get(
        "reserved_concurrency")


def function_names(stage: str) -> dict[str, str]:
    """Template logical id -> the fixed function name the runbook uses."""
    base = f"{APP_NAME}-{stage}"
    return {"APIHandler": base, "Migrate": f"{base}-migrate", "ExpireAbandoned": f"{base}-expire-abandoned",
            "ProcessJob": f"{base}-process-job", "FailUndeliverable": f"{base}-fail-undeliverable",
            "DispatchJobs": f"{base}-dispatch-jobs"}


def _alarm(name: str, description: str, **properties) -> dict:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "AlarmDescription": description,
            "AlarmActions": [{"Ref": "AlarmTopic"}],
            "OKActions": [{"Ref": "AlarmTopic"}],
            "TreatMissingData": "notBreaching",
            **properties,
        },
    }


def _metric(ident: str, spec: dict, stat: str = "Sum", period: int = 300) -> dict:
    return {"Id": ident, "ReturnData": False, "MetricStat": {"Metric": spec, "Period": period, "Stat": stat}}


def _flat(spec: dict) -> dict:
    """A metric spec as a single-metric alarm's properties."""
    return {"Namespace": spec["Namespace"], "MetricName": spec["MetricName"], "Dimensions": spec["Dimensions"]}


def _rate_alarm(name: str, description: str, errors: dict, requests: dict, *, rate: float, count: int,
                periods: int = 2) -> dict:
    """Breaching in a 5-minute period with at least `count` errors whatever the traffic, or, over at least
    MIN_REQUESTS_FOR_RATE_ALARMS requests, with more than `rate` of them errors; `periods` periods in a row.

    The expression is 1 (breaching) or 0, written with nested IFs (no division, so no gap where there were no
    requests): the alarm compares it with 1."""
    e, r = "FILL(errors, 0)", "FILL(requests, 0)"
    expression = (f"IF({e} >= {count}, 1, IF({r} >= {MIN_REQUESTS_FOR_RATE_ALARMS}, "
                  f"IF({e} > {rate} * {r}, 1, 0), 0))")
    return _alarm(name, description, EvaluationPeriods=periods, DatapointsToAlarm=periods, Threshold=1,
                  ComparisonOperator="GreaterThanOrEqualToThreshold", Metrics=[
                      _metric("errors", errors), _metric("requests", requests),
                      {"Id": "breaching", "ReturnData": True, "Expression": expression,
                       "Label": f"{count}+ errors, or over {rate:.0%} of {MIN_REQUESTS_FOR_RATE_ALARMS}+ requests"}])


def dashboard(stage: str, names: dict[str, str], api_dimensions: list[dict]) -> dict:
    """The stage at a glance: traffic, errors, latency, refusals, confirms, the sweep, concurrency.

    Written for `Fn::Sub` (`${AWS::Region}`, `${RestAPI}`); the log widgets query the access log."""
    region = "${AWS::Region}"
    api = [item for d in api_dimensions for item in (d["Name"], d["Value"])]
    access_log = f"/aws/apigateway/{APP_NAME}-{stage}-access"

    def graph(title: str, metrics: list, x: int, y: int, stat: str = "Sum", period: int = 300) -> dict:
        return {"type": "metric", "x": x, "y": y, "width": 8, "height": 6, "properties": {
            "title": title, "region": region, "stat": stat, "period": period, "view": "timeSeries",
            "metrics": metrics}}

    def logs(title: str, query: str, x: int, y: int) -> dict:
        return {"type": "log", "x": x, "y": y, "width": 8, "height": 6, "properties": {
            "title": title, "region": region, "view": "table",
            "query": f"SOURCE '{access_log}' | {query}"}}

    return {"widgets": [
        graph("Requests", [["AWS/ApiGateway", "Count", *api]], 0, 0),
        logs("4xx by status", "filter status >= 400 and status < 500 | stats count(*) as requests by status "
                              "| sort status", 8, 0),
        graph("5xx", [["AWS/ApiGateway", "5XXError", *api]], 16, 0),
        graph("Latency p50 / p99 (ms)", [["AWS/ApiGateway", "Latency", *api, {"stat": "p50"}],
                                         ["AWS/ApiGateway", "Latency", *api, {"stat": "p99"}]], 0, 6),
        graph("429s (all) and stage throttling", [
            [METRICS_NAMESPACE, "Responses429", "ApiId", "${RestAPI}"],
            [METRICS_NAMESPACE, "ThrottledRequests", "ApiId", "${RestAPI}"]], 8, 6),
        logs("Confirms by status", "filter route = '/api/upload/{upload_id}/confirm' and method = 'POST' "
                                   "| stats count(*) as confirms by status | sort status", 16, 6),
        graph("Sweep results (hourly)", [
            [METRICS_NAMESPACE, name, "Stage", stage] for name in
            ("UploadsExpired", "ObjectsDeleted", "EmailsCleared", "SweepHeartbeat")], 0, 12, period=3600),
        graph("Concurrency (max)", [["AWS/Lambda", "ConcurrentExecutions", "FunctionName", name]
                                    for name in names.values()], 8, 12, stat="Maximum", period=60),
        graph("Function errors and throttles", [
            ["AWS/Lambda", metric, "FunctionName", name] for name in names.values()
            for metric in ("Errors", "Throttles")], 16, 12),
        graph("Health check: failed (1) and ms", [
            [METRICS_NAMESPACE, "HealthCheckFailed", "Stage", stage, {"stat": "Maximum"}],
            [METRICS_NAMESPACE, "HealthCheckMs", "Stage", stage, {"stat": "Maximum", "yAxis": "right"}]],
            0, 18, period=HEALTH_CHECK_MINUTES * 60),
    ]}


# What each function's role may read from SSM: exactly the parameters its environment names. The API never
# names the direct (owner-capable) database URL; migrate names only it and the PostHog key, which every function
# reads to report its failures to error tracking. The sweep computes no digest, but its settings are checked
# whole at start-up, the digest secret's length included.
FUNCTION_SECRETS = {
    "APIHandler": {"DATABASE_URL": "database-url", "R2_ENDPOINT_URL": "r2-endpoint-url",
                   "R2_ACCESS_KEY_ID": "r2-access-key-id", "R2_SECRET_ACCESS_KEY": "r2-secret-access-key",
                   "POSTHOG_API_KEY": "posthog-api-key", "DIGEST_SECRET": "digest-secret"},
    "ExpireAbandoned": {"DATABASE_URL": "database-url", "R2_ENDPOINT_URL": "r2-endpoint-url",
                        "R2_ACCESS_KEY_ID": "r2-access-key-id", "R2_SECRET_ACCESS_KEY": "r2-secret-access-key",
                        "POSTHOG_API_KEY": "posthog-api-key", "DIGEST_SECRET": "digest-secret"},
    "Migrate": {"DATABASE_URL": "database-url-direct", "POSTHOG_API_KEY": "posthog-api-key"},
}
# The processing functions: the worker and the dispatcher speak to the processing service (its token); the
# dead-letter handler only fails jobs.
_WORKER_SECRETS = {**FUNCTION_SECRETS["ExpireAbandoned"], "PROCESSING_API_TOKEN": "processing-api-token"}
FUNCTION_SECRETS.update({"ProcessJob": _WORKER_SECRETS, "DispatchJobs": _WORKER_SECRETS,
                         "FailUndeliverable": dict(FUNCTION_SECRETS["ExpireAbandoned"])})
# A message is invisible for six times the worker's timeout after each receive (AWS's advice for a Lambda
# trigger), and goes to the dead-letter queue after five receives.
VISIBILITY_TIMEOUT_FACTOR = 6
MAX_RECEIVES = 5


def scope_function_access(template: dict, stage: str) -> None:
    """Each function's role: write to its own log group, read the SSM parameters its own environment names.

    The stage's environment (from .chalice/config.json) names every secret; each function keeps only the
    references it uses, pointed at its own parameters. Settings still wants the storage settings present in the
    migrate function, so its R2 references stay as names it never reads (migrate resolves DATABASE_URL alone).
    """
    resources = template["Resources"]
    for logical_id, secrets in FUNCTION_SECRETS.items():
        function = resources[logical_id]["Properties"]
        variables = function["Environment"]["Variables"]
        for name in ("DATABASE_URL", "R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY",
                     "POSTHOG_API_KEY", "DIGEST_SECRET", "PROCESSING_API_TOKEN"):
            if name in secrets:
                variables[f"{name}_SSM_PARAMETER"] = f"/3d-ultra/{stage}/{secrets[name]}"
            elif name in ("POSTHOG_API_KEY", "PROCESSING_API_TOKEN"):
                variables.pop(f"{name}_SSM_PARAMETER", None)
        readable = sorted(set(secrets.values()))
        role = resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
        role["Policies"] = [policy for policy in role["Policies"]
                            if policy["PolicyName"] != f"{function['Role']['Fn::GetAtt'][0]}Policy"]
        role["Policies"].insert(0, {"PolicyName": "OwnLogsAndSecrets", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [
                {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": {"Fn::GetAtt": [f"{logical_id}LogGroup", "Arn"]}},
                {"Sid": "OwnSecrets", "Effect": "Allow", "Action": "ssm:GetParameters", "Resource": [
                    {"Fn::Sub": f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter"
                                f"/3d-ultra/{stage}/{name}"} for name in readable]},
            ]}})


def add_health_check(template: dict, stage: str, names: dict[str, str]) -> None:
    """The synthetic check of GET <ApiUrl>api/health (ops/health_check.py, inline: no package, no dependency)
    every HEALTH_CHECK_MINUTES, with its own log group and a role that may only write there."""
    resources = template["Resources"]
    api = resources["APIHandler"]["Properties"]
    name = f"{names['APIHandler']}-health-check"
    api_url = template["Outputs"]["EndpointURL"]["Value"]["Fn::Sub"]
    resources["HealthCheckLogGroup"] = {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain",
        "Properties": {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": LOG_RETENTION_DAYS},
    }
    resources["HealthCheckRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "OwnLogs", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": {"Fn::GetAtt": ["HealthCheckLogGroup", "Arn"]}}]}}],
        },
    }
    resources["HealthCheck"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "FunctionName": name,
            "Description": "GET /api/health every few minutes; HealthCheckFailed is what the health-check alarm reads",
            "Runtime": api["Runtime"], "Architectures": api.get("Architectures", ["x86_64"]),
            "Handler": "index.handler", "InlineCode": HEALTH_CHECK_SOURCE.read_text(),
            "MemorySize": 128, "Timeout": HEALTH_CHECK_TIMEOUT_SECONDS + 5,
            "Role": {"Fn::GetAtt": ["HealthCheckRole", "Arn"]},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": {"Ref": "HealthCheckLogGroup"}},
            "Environment": {"Variables": {
                "HEALTH_URL": {"Fn::Sub": api_url + "api/health"}, "STAGE": stage,
                "METRICS_NAMESPACE": METRICS_NAMESPACE, "TIMEOUT_SECONDS": str(HEALTH_CHECK_TIMEOUT_SECONDS)}},
            "Events": {"Schedule": {"Type": "Schedule", "Properties": {
                "Schedule": f"rate({HEALTH_CHECK_MINUTES} minutes)",
                "Description": f"the synthetic check of {stage}'s /api/health"}}},
            # It never raises (a failed check is a metric), so a retry would only check twice.
            "EventInvokeConfig": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 300},
        },
    }
    template["Outputs"]["HealthCheckFunctionName"] = {"Value": {"Ref": "HealthCheck"}}


def add_operations(template: dict, stage: str, config: dict) -> dict:
    """Merge the operations resources into Chalice's SAM template (in place; also returned)."""
    resources = template["Resources"]
    outputs = template.setdefault("Outputs", {})
    names = function_names(stage)
    api_name = f"{APP_NAME}-{stage}"
    functions_config = config.get("lambda_functions", {})
    reserved = {
        "APIHandler": functions_config.get("api_handler", {}).get("reserved_concurrency"),
        "Migrate": functions_config.get("migrate", {}).get("reserved_concurrency"),
        "ExpireAbandoned": functions_config.get("expire-abandoned", {}).get("reserved_concurrency"),
        "ProcessJob": functions_config.get("process-job", {}).get("reserved_concurrency"),
        "FailUndeliverable": functions_config.get("fail-undeliverable", {}).get("reserved_concurrency"),
        "DispatchJobs": functions_config.get("dispatch-jobs", {}).get("reserved_concurrency"),
    }
    template["Parameters"] = {
        "AlarmEmail": {"Type": "String", "Default": "",
                       "Description": "Address subscribed to the alarm topic (empty: subscribe later)"},
        "ApiThrottleRate": {"Type": "Number", "Default": 20, "MinValue": 1,
                            "Description": "Steady requests per second the API stage accepts"},
        "ApiThrottleBurst": {"Type": "Number", "Default": reserved["APIHandler"] or 20, "MinValue": 1,
                             "Description": "Requests the API stage accepts at once: at most the API function's "
                                            "reserved concurrency, or Lambda throttles what the stage admitted"},
    }
    if reserved["APIHandler"]:
        template["Parameters"]["ApiThrottleBurst"]["MaxValue"] = reserved["APIHandler"]
    # Without OpenApiVersion, SAM adds a second stage named "Stage" (no throttling, no access log, no alarms).
    template["Globals"] = {"Api": {"OpenApiVersion": "2.0"}}
    template["Conditions"] = {"HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}}

    for logical_id, name in names.items():
        function = resources[logical_id]["Properties"]
        function["FunctionName"] = name
        function["LoggingConfig"] = {"LogFormat": "Text", "LogGroup": {"Ref": f"{logical_id}LogGroup"}}
        if reserved[logical_id] is not None:
            function["ReservedConcurrentExecutions"] = reserved[logical_id]
        resources[f"{logical_id}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            # Kept when the stack is deleted, but removed when its own first create rolls back: a retained group
            # would make the retried create fail with "already exists".
            "DeletionPolicy": "RetainExceptOnCreate",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": LOG_RETENTION_DAYS},
        }
        outputs.pop(f"{logical_id}Name", None)
        outputs[f"{logical_id}FunctionName"] = {"Value": {"Ref": logical_id}}

    # The sweep runs from a schedule (asynchronously): after Lambda's retries a failed run lands on the topic.
    resources["ExpireAbandoned"]["Properties"]["EventInvokeConfig"] = {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Type": "SNS", "Destination": {"Ref": "AlarmTopic"}}},
    }
    resources["ExpireAbandonedRole"]["Properties"]["Policies"].append({
        "PolicyName": "SweepFailureDestination",
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "AlarmTopic"}}]},
    })

    api = resources["RestAPI"]["Properties"]
    api["Name"] = api_name
    api["DefinitionBody"]["info"]["title"] = api_name
    api["MethodSettings"] = [{
        "ResourcePath": "/*",
        "HttpMethod": "*",
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }]
    api["AccessLogSetting"] = {"DestinationArn": {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]},
                               "Format": ACCESS_LOG_FORMAT}
    # Access logs need API Gateway's CloudWatch role, one per account and region for every API there: the stack
    # leaves that setting alone (the deploy checks one is set; docs/deploy.md's "From zero" sets one where none is).
    resources["ApiAccessLogGroup"] = {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "RetainExceptOnCreate",
        "UpdateReplacePolicy": "Retain",
        "Properties": {"LogGroupName": f"/aws/apigateway/{api_name}-access", "RetentionInDays": LOG_RETENTION_DAYS},
    }
    # In the Swagger body (not separate resources) so that a change redeploys the stage.
    api["DefinitionBody"]["x-amazon-apigateway-gateway-responses"] = gateway_responses()

    resources["AlarmTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"{api_name}-alarms"}}
    resources["AlarmEmailSubscription"] = {
        "Type": "AWS::SNS::Subscription",
        "Condition": "HasAlarmEmail",
        "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}},
    }
    api_dimensions = [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": config.get(
        "api_gateway_stage", "api")}]
    api_limit = reserved["APIHandler"]
    for metric, pattern in ACCESS_LOG_METRICS.items():
        resources[f"{metric}MetricFilter"] = {
            "Type": "AWS::Logs::MetricFilter",
            "Properties": {
                "LogGroupName": {"Ref": "ApiAccessLogGroup"},
                "FilterPattern": pattern,
                "MetricTransformations": [{"MetricNamespace": METRICS_NAMESPACE, "MetricName": metric,
                                           "MetricValue": "1", "Unit": "Count",
                                           "Dimensions": [{"Key": "ApiId", "Value": "$.apiId"}]}],
            },
        }
    add_health_check(template, stage, names)
    api_count = {"Namespace": "AWS/ApiGateway", "MetricName": "Count", "Dimensions": api_dimensions}

    def lambda_metric(metric: str, logical_id: str) -> dict:
        return {"Namespace": "AWS/Lambda", "MetricName": metric,
                "Dimensions": [{"Name": "FunctionName", "Value": names[logical_id]}]}

    # Each alarm pages someone: it fires only when a person has something to do (the description says what),
    # and every outage users notice fires one at any traffic (the synthetic check and the absolute counts).
    resources.update({
        "Api5xxAlarm": _rate_alarm(
            f"{api_name}-api-5xx", "Users are getting 5XX answers: 10 or more in 5 minutes (any traffic), or over 5% "
            f"of at least {MIN_REQUESTS_FOR_RATE_ALARMS} requests, twice in a row. Act: the health check and the "
            "dashboard say which dependency fails (Neon, R2, SSM) or whether a deploy did; roll back or fix it",
            {"Namespace": "AWS/ApiGateway", "MetricName": "5XXError", "Dimensions": api_dimensions}, api_count,
            rate=0.05, count=10),
        "HealthCheckAlarm": _alarm(
            f"{api_name}-health-check", f"GET /api/health failed twice within 15 minutes (checked every "
            f"{HEALTH_CHECK_MINUTES} minutes by {names['APIHandler']}-health-check; 503 names the failing "
            "dependency). INSUFFICIENT_DATA after OK: the check itself stopped. Act: restore the dependency or "
            "roll back",
            Namespace=METRICS_NAMESPACE, MetricName="HealthCheckFailed", Dimensions=[{"Name": "Stage", "Value": stage}],
            Statistic="Maximum", Period=HEALTH_CHECK_MINUTES * 60, EvaluationPeriods=3, DatapointsToAlarm=2,
            Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold"),
        "ApiLatencyP99Alarm": _alarm(
            f"{api_name}-api-latency-p99", f"p99 API latency above 3 s over at least {MIN_REQUESTS_FOR_RATE_ALARMS} "
            "requests in each of three 5-minute periods (a quiet hour's few cold requests never count). Act: the "
            "dashboard tells Neon, R2 or cold starts apart",
            EvaluationPeriods=3, DatapointsToAlarm=3, Threshold=3000, ComparisonOperator="GreaterThanThreshold",
            Metrics=[_metric("p99", {"Namespace": "AWS/ApiGateway", "MetricName": "Latency",
                                     "Dimensions": api_dimensions}, stat="p99"),
                     _metric("requests", api_count),
                     {"Id": "gated", "ReturnData": True, "Label": f"p99 (ms) over {MIN_REQUESTS_FOR_RATE_ALARMS}+ "
                                                                  "requests",
                      "Expression": f"IF(FILL(requests, 0) >= {MIN_REQUESTS_FOR_RATE_ALARMS}, p99, 0)"}]),
        "ApiUnhandledErrorsAlarm": _alarm(
            f"{api_name}-api-unhandled-errors", "An unexpected exception was answered 500 (UnhandledErrors, from our "
            "log lines): a bug, which no retry mends. Act: read the line's exception and fix it",
            Namespace=METRICS_NAMESPACE, MetricName="UnhandledErrors", Dimensions=[{"Name": "Stage", "Value": stage}],
            Statistic="Sum", Period=300, EvaluationPeriods=1, Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold"),
        "ApiErrorsAlarm": _alarm(
            f"{api_name}-api-function-errors", "The API function itself failed 3 or more times in 5 minutes "
            "(timeouts, crashes, a failed start: Lambda Errors, answered 502/504 by API Gateway). Act: its log "
            "(Task timed out, the start-up error)",
            Statistic="Sum", Period=300, EvaluationPeriods=1, Threshold=3,
            ComparisonOperator="GreaterThanOrEqualToThreshold", **_flat(lambda_metric("Errors", "APIHandler"))),
        "ApiThrottlesAlarm": _alarm(
            f"{api_name}-throttles", "Lambda throttled the API function in each of three 5-minute periods in a row "
            "(answered 500): traffic needs more than its reserved concurrency for 15 minutes. Act: raise "
            "reserved_concurrency or find the caller",
            Statistic="Sum", Period=300, EvaluationPeriods=3, DatapointsToAlarm=3, Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold", **_flat(lambda_metric("Throttles", "APIHandler"))),
        "ApiGatewayThrottlesAlarm": _rate_alarm(
            f"{api_name}-stage-throttles", "API Gateway's stage throttle refused 50 or more requests in 5 minutes, "
            "or over 5% of them, twice in a row (THROTTLED in the access log). Act: raise ApiThrottleRate (and the "
            "burst, within reserved concurrency) or find the caller",
            {"Namespace": METRICS_NAMESPACE, "MetricName": "ThrottledRequests",
             "Dimensions": [{"Name": "ApiId", "Value": {"Ref": "RestAPI"}}]}, api_count, rate=0.05, count=50),
        "ExpireAbandonedDeliveryAlarm": _alarm(
            f"{api_name}-sweep-failure-undelivered", "A sweep that failed all its tries could not be delivered to "
            "the alarm topic (DestinationDeliveryFailures). Act: read the sweep's log; fix the topic's permission",
            Statistic="Sum", Period=300, EvaluationPeriods=1, Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            **_flat(lambda_metric("DestinationDeliveryFailures", "ExpireAbandoned"))),
        "MigrateErrorsAlarm": _alarm(
            f"{api_name}-migrate-errors", "The migrate function failed (a deploy's check, or a manual run): the "
            "schema may not be what the code expects. Act: read its log; the deploy stopped",
            Statistic="Sum", Period=300, EvaluationPeriods=1, Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold", **_flat(lambda_metric("Errors", "Migrate"))),
    })
    # A missed sweep leaves no data at all, so "missing" is the signal here. A new alarm starts in
    # INSUFFICIENT_DATA and, with missing data left as missing, stays there quietly until the first heartbeat
    # (the deploy runs the sweep once), so a fresh stack raises nothing; once armed (OK), two hours without a
    # heartbeat move it to INSUFFICIENT_DATA, which notifies the topic. A run whose tries all failed reaches the
    # topic as the sweep's on-failure destination, with its error; one that a retry mended pages nobody.
    heartbeat = _alarm(
        f"{api_name}-sweep-missed", "No sweep heartbeat for 2 hours: two hourly runs did not complete. "
        "INSUFFICIENT_DATA after OK means the heartbeats stopped. Act: the sweep's log, then make sweep",
        Namespace=METRICS_NAMESPACE, MetricName="SweepHeartbeat", Dimensions=[{"Name": "Stage", "Value": stage}],
        Statistic="Sum", Period=3600, EvaluationPeriods=2, Threshold=1, ComparisonOperator="LessThanThreshold")
    heartbeat["Properties"]["TreatMissingData"] = "missing"
    heartbeat["Properties"]["InsufficientDataActions"] = [{"Ref": "AlarmTopic"}]
    resources["SweepHeartbeatAlarm"] = heartbeat
    # The same for the synthetic check: quiet until its first run, then a check that stops reporting notifies.
    health = resources["HealthCheckAlarm"]["Properties"]
    health["TreatMissingData"] = "missing"
    health["InsufficientDataActions"] = [{"Ref": "AlarmTopic"}]
    if api_limit:
        resources["ApiConcurrencyAlarm"] = _alarm(
            f"{api_name}-concurrency-near-limit", f"API function concurrency at 80% of its reserved {api_limit} in 3 "
            "of 5 minutes: throttling (500s) is next. Act: raise reserved_concurrency (and the account's quota) "
            "or find the caller",
            Statistic="Maximum", Period=60, EvaluationPeriods=5, DatapointsToAlarm=3,
            Threshold=max(1, int(api_limit * 0.8)), ComparisonOperator="GreaterThanOrEqualToThreshold",
            **_flat(lambda_metric("ConcurrentExecutions", "APIHandler")))
    resources["Dashboard"] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {"DashboardName": api_name,
                       "DashboardBody": {"Fn::Sub": json.dumps(dashboard(stage, names, api_dimensions))}},
    }
    add_processing(template, stage, config, names)
    scope_function_access(template, stage)

    outputs["ApiUrl"] = {"Description": "Base URL of the API (routes start with /api/)",
                         "Value": outputs.pop("EndpointURL")["Value"]}
    outputs["AlarmTopicArn"] = {"Value": {"Ref": "AlarmTopic"}}
    return template


def add_processing(template: dict, stage: str, config: dict, names: dict[str, str]) -> None:
    """The hand-off: the jobs queue and its dead-letter queue, the worker's trigger (one message per invocation,
    concurrency capped at the processing service's limit), who may send and receive, and the alarms that say a
    person must look (messages waiting too long, messages given up on, a worker that keeps failing)."""
    resources = template["Resources"]
    functions_config = config.get("lambda_functions", {})
    worker_config = functions_config.get("process-job", {})
    worker_timeout = worker_config.get("lambda_timeout", config.get("lambda_timeout", 60))
    queue_name = stage_environment(stage).get("JOBS_QUEUE_NAME") or f"{APP_NAME}-{stage}-jobs"
    resources["JobsDeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": f"{queue_name}-dead", "MessageRetentionPeriod": 14 * 24 * 3600, "SqsManagedSseEnabled": True}}
    resources["JobsQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {
        "QueueName": queue_name, "VisibilityTimeout": VISIBILITY_TIMEOUT_FACTOR * worker_timeout,
        "MessageRetentionPeriod": 4 * 24 * 3600, "SqsManagedSseEnabled": True,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]},
                          "maxReceiveCount": MAX_RECEIVES}}}
    queue_arn = {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    dead_arn = {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}
    for logical_id, event, arn in (("ProcessJob", "ProcessJobSqsEventSource", queue_arn),
                                   ("FailUndeliverable", "FailUndeliverableSqsEventSource", dead_arn)):
        properties = resources[logical_id]["Properties"]["Events"][event]["Properties"]
        properties["Queue"] = arn
        properties["BatchSize"] = 1
    # The processing service's limit on tasks at once; the function's reserved concurrency matches it.
    concurrency = worker_config.get("maximum_concurrency", 10)
    resources["ProcessJob"]["Properties"]["Events"]["ProcessJobSqsEventSource"]["Properties"]["ScalingConfig"] = {
        "MaximumConcurrency": concurrency}
    # The queue's URL where a function sends (the processing settings are the worker's and the dispatcher's own,
    # in .chalice/config.json's lambda_functions).
    for logical_id in ("APIHandler", "ProcessJob", "DispatchJobs"):
        resources[logical_id]["Properties"]["Environment"]["Variables"]["JOBS_QUEUE_URL"] = {"Ref": "JobsQueue"}
    # The email of a finished job goes out through SES from the worker: its configuration set (bounces and
    # complaints are SES's to track), and a grant to send from the sender's domain through it only. The domain's
    # identity is verified in SES by the operator (DNS records), once.
    worker_variables = resources["ProcessJob"]["Properties"]["Environment"]["Variables"]
    configuration_set = worker_variables.get("SES_CONFIGURATION_SET")
    if configuration_set:
        sender_domain = worker_variables["EMAIL_FROM"].rsplit("@", 1)[1].rstrip(">").strip()
        resources["EmailConfigurationSet"] = {"Type": "AWS::SES::ConfigurationSet",
                                              "Properties": {"Name": configuration_set}}
        role = resources[resources["ProcessJob"]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        role["Policies"].append({"PolicyName": "SendJobEmail", "PolicyDocument": {"Version": "2012-10-17",
                                 "Statement": [{"Effect": "Allow", "Action": "ses:SendEmail", "Resource": [
                                     {"Fn::Sub": f"arn:${{AWS::Partition}}:ses:${{AWS::Region}}:${{AWS::AccountId}}:"
                                                 f"identity/{sender_domain}"},
                                     {"Fn::Sub": f"arn:${{AWS::Partition}}:ses:${{AWS::Region}}:${{AWS::AccountId}}:"
                                                 f"configuration-set/{configuration_set}"}]}]}})
    grants = {"APIHandler": (["sqs:SendMessage"], [queue_arn]),
              "DispatchJobs": (["sqs:SendMessage"], [queue_arn]),
              "ProcessJob": (["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                              "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"], [queue_arn]),
              "FailUndeliverable": (["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                     "sqs:ChangeMessageVisibility"], [dead_arn])}
    for logical_id, (actions, queues) in grants.items():
        role = resources[resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        role["Policies"].append({"PolicyName": "JobsQueue", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": queues}]}})
    api_name = f"{APP_NAME}-{stage}"
    queue_dimensions = [{"Name": "QueueName", "Value": queue_name}]
    resources.update({
        "JobsQueueAgeAlarm": _alarm(
            f"{api_name}-jobs-waiting", "The oldest job in the processing queue has waited over 10 minutes, three "
            "times in a row: workers are not taking jobs (throttled, failing at start-up, or the provider's limit). "
            "Act: the worker's log and the queue widgets (runbook: Jobs wait in the queue)",
            Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage", Dimensions=queue_dimensions,
            Statistic="Maximum", Period=300, EvaluationPeriods=3, Threshold=600,
            ComparisonOperator="GreaterThanThreshold"),
        # Its handler fails a dead-lettered job within seconds, so the queue itself is nearly always empty: the
        # handler's invocations are what say a job was given up.
        "JobsDeadLettersAlarm": _alarm(
            f"{api_name}-jobs-dead-letters", "A job message failed five receives and reached the dead-letter queue "
            "(its job was failed). Act: find why in the worker's log, fix it, retry the jobs (runbook)",
            Namespace="AWS/Lambda", MetricName="Invocations",
            Dimensions=[{"Name": "FunctionName", "Value": names["FailUndeliverable"]}], Statistic="Sum", Period=300,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold"),
        "ProcessJobErrorsAlarm": _alarm(
            f"{api_name}-worker-errors", "The processing worker failed 10 or more invocations in each of three "
            "5-minute periods (a bug, or a dependency down for 15 minutes). Act: its log names the exception",
            Namespace="AWS/Lambda", MetricName="Errors", Dimensions=[{"Name": "FunctionName", "Value": names[
                "ProcessJob"]}], Statistic="Sum", Period=300, EvaluationPeriods=3, Threshold=10,
            ComparisonOperator="GreaterThanOrEqualToThreshold"),
    })


def gateway_responses() -> dict:
    """API Gateway's own error answers in the API's error shape, readable by browsers."""

    def response(code: str, message: str, status: str | None = None, headers: dict | None = None) -> dict:
        body = json.dumps({"error": {"code": code, "message": message}})
        answer = {
            "responseParameters": {**GATEWAY_CORS_HEADERS, **(headers or {})},
            "responseTemplates": {"application/json": body},
        }
        if status:
            answer["statusCode"] = status
        return answer

    return {
        "DEFAULT_4XX": response("BAD_REQUEST", "The request could not be handled."),
        "DEFAULT_5XX": response("SERVICE_UNAVAILABLE",
                                "The service is temporarily unavailable. Please try again in a moment."),
        "THROTTLED": response("RATE_LIMITED", "Too many uploads right now. Please try again in 1 minute.",
                              "429", {"gatewayresponse.header.Retry-After": "'60'"}),
        "REQUEST_TOO_LARGE": response("PAYLOAD_TOO_LARGE", "The request body is too large.", "413"),
        # API Gateway answers an unknown route 403 (as `chalice local` does); the status stays, the body is ours.
        "MISSING_AUTHENTICATION_TOKEN": response("NOT_FOUND", "There is no such route."),
    }


def origin_variables(environment: dict[str, str], origins: str) -> dict[str, str]:
    """The stage's origin setting replaced by `origins` (comma-separated), under the name the stage uses."""
    if "ALLOWED_ORIGINS" in environment or "ALLOWED_ORIGIN" not in environment:
        return {"ALLOWED_ORIGINS": origins}
    if "," in origins:
        raise PackageRefused("this stage sets ALLOWED_ORIGIN (one origin); give one origin or use ALLOWED_ORIGINS")
    return {"ALLOWED_ORIGIN": origins}


def package(stage: str, *, allow_placeholder_origins: bool = False, allowed_origins_override: str | None = None,
            out: Path | None = None) -> Path:
    """Build build/<stage>: sam.json (with operations resources) and deployment.zip; lint and scan them."""
    out = out or ROOT / "build" / stage
    config = stage_config(stage)
    environment = {**stage_environment(stage), "VERSION": deployed_version()}
    overrides = {"VERSION": environment["VERSION"], "STAGE": stage}
    if allowed_origins_override:
        if not allow_placeholder_origins:
            check_origins(stage, {"ALLOWED_ORIGINS": allowed_origins_override})
        overrides.update(origin_variables(environment, allowed_origins_override))
        environment.update(overrides)
    if allow_placeholder_origins:
        print("note: placeholder origins allowed: this build is for checking only, never for deploying", flush=True)
    else:
        check_origins(stage, environment)
    bin_dir = Path(sys.executable).parent
    # The stage config alone says which origins the build allows: an origin setting left in the packager's own
    # shell (a `make dev` session, the test suite's) must not mix into it.
    shell = {k: v for k, v in os.environ.items() if k not in ("ALLOWED_ORIGIN", "ALLOWED_ORIGINS")}
    env = {**shell, **environment}
    env.setdefault("AWS_DEFAULT_REGION", "eu-central-1")  # chalice needs a region to name ARNs; none is called
    _run([str(bin_dir / "chalice"), "package", "--stage", stage, str(out)], env)
    template_path = out / "sam.json"
    template = add_operations(json.loads(template_path.read_text()), stage, config)
    for resource in template["Resources"].values():
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables")
        if variables is not None:
            variables.update(overrides)
            if "FRONTEND_URL" in variables:
                # The emailed links open the front end the API serves: its first allowed origin.
                variables["FRONTEND_URL"] = allowed_origins(environment)[0]
    template_path.write_text(json.dumps(template, indent=2) + "\n")
    (out / "package.json").write_text(json.dumps({
        "stage": stage, "version": environment["VERSION"],
        "placeholderOrigins": bool(placeholder_origins(allowed_origins(environment))),
    }) + "\n")
    _run([str(bin_dir / "cfn-lint"), str(template_path)], env)
    _run([sys.executable, "-m", "ops.secrets_scan", str(template_path)], env)
    runtime, warnings = runtime_notes(template)
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}: "
          f"{(out / 'deployment.zip').stat().st_size / 1e6:.1f} MB deployment.zip, runtime {runtime}, "
          f"version {environment['VERSION']}, resources:")
    for name, resource in template["Resources"].items():
        print(f"  {name}: {resource['Type']}")
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return out


def _run(step: list[str], env: dict) -> None:
    shown = step[1:] if step[0] == sys.executable else [Path(step[0]).name, *step[1:]]
    print("+ " + " ".join(shown), flush=True)
    result = subprocess.run(step, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--allow-placeholder-origins", action="store_true",
                        help="package even if prod's allowed origins are placeholders (a check build, not for deploying)")
    parser.add_argument("--allowed-origins", metavar="ORIGINS",
                        help="comma-separated origins for this build, instead of the stage config's")
    args = parser.parse_args(argv)
    try:
        package(args.stage, allow_placeholder_origins=args.allow_placeholder_origins,
                allowed_origins_override=args.allowed_origins)
    except PackageRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
