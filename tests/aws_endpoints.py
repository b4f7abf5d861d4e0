"""Local endpoints that answer the AWS CLI as Lambda and CloudFormation do, for what moto's server cannot serve.

moto implements neither Lambda's GetAccountSettings nor an Invoke that runs without Docker, and cannot create a
SAM stack. This one server answers both services over real HTTP in their own protocols (Lambda's REST-JSON,
CloudFormation's query protocol with XML answers), so the real, pinned CLI is what the deploy tests drive for
every step: a flag it rejects, a retry it makes or a response it cannot parse fails a test. The CLI reaches it
through `AWS_ENDPOINT_URL_LAMBDA` and `AWS_ENDPOINT_URL_CLOUDFORMATION`; everything else goes to moto.

It records every operation it served, in order, and counts the invocations each function received (a refused
one, answered 429 before anything ran, counts apart).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

ACCOUNT = "123456789012"
CFN_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


@dataclass
class Function:
    """How a function behaves when invoked."""

    seconds: float = 0.0  # how long a run takes
    fails: bool = False  # the function raises: FunctionError Unhandled
    busy: int = 0  # the next `busy` invocations are refused (TooManyRequestsException), nothing runs
    reserved: int | None = None  # its reserved concurrency (0: none); None: the function does not exist yet
    answer: dict = field(default_factory=lambda: {"expired": 0})


@dataclass
class Stack:
    name: str
    status: str
    parameters: dict[str, str] = field(default_factory=dict)
    template: str = ""
    template_parameters: list[str] = field(default_factory=list)
    stack_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class FakeAws:
    """Lambda and CloudFormation on 127.0.0.1, as the CLI sees them."""

    def __init__(self, *, region: str, fetch_template=None):
        self.region = region
        # (bucket, key) -> template text, for a change set given a TemplateURL (the CLI uploaded it to S3).
        self.fetch_template = fetch_template
        self.functions: dict[str, Function] = {}
        self.account = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}
        self.stacks: dict[str, Stack] = {}
        self.outputs: dict[str, str] = {}
        self.on_execute = None  # called with the stack name when a change set is executed
        self.operations: list[tuple] = []
        self.invocations: dict[str, list[bytes]] = {}
        self.refused: dict[str, int] = {}
        self.change_sets: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_LAMBDA": self.endpoint_url, "AWS_ENDPOINT_URL_CLOUDFORMATION": self.endpoint_url}

    def start(self) -> "FakeAws":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def function(self, name: str) -> Function:
        return self.functions.setdefault(name, Function())

    def invocation_count(self, name: str) -> int:
        return len(self.invocations.get(name, []))

    def names(self, service: str | None = None) -> list[str]:
        """The operations served, in order (optionally one service's)."""
        return [op[1] for op in self.operations if service is None or op[0] == service]

    # Lambda (REST-JSON) --------------------------------------------------------------------------------------

    def _lambda(self, method: str, path: str, body: bytes):
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and parts[:2] == ["2016-08-19", "account-settings"]:
            self._record("lambda", "GetAccountSettings")
            return 200, {}, {"AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                                              "CodeSizeZipped": 52428800, **self.account},
                             "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": 0}}
        if method == "GET" and parts[:2] == ["2019-09-30", "functions"] and parts[3:] == ["concurrency"]:
            name = parts[2]
            self._record("lambda", "GetFunctionConcurrency", name)
            function = self.functions.get(name)
            if function is None or function.reserved is None:
                return self._lambda_error(404, "ResourceNotFoundException",
                                          f"Function not found: arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}")
            return 200, {}, {"ReservedConcurrentExecutions": function.reserved} if function.reserved else {}
        if method == "POST" and parts[:2] == ["2015-03-31", "functions"] and parts[3:] == ["invocations"]:
            return self._invoke(parts[2], body)
        return self._lambda_error(404, "UnknownOperationException", f"{method} {path}")

    def _invoke(self, name: str, payload: bytes):
        function = self.function(name)
        with self._lock:
            if function.busy:
                function.busy -= 1
                self.refused[name] = self.refused.get(name, 0) + 1
                refused = True
            else:
                self.invocations.setdefault(name, []).append(payload)
                refused = False
        self._record("lambda", "Invoke", name, "refused" if refused else "ran")
        if refused:
            return self._lambda_error(429, "TooManyRequestsException", "Rate Exceeded.",
                                      Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
        time.sleep(function.seconds)
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if function.fails:
            headers["X-Amz-Function-Error"] = "Unhandled"
            return 200, headers, {"errorMessage": "boom", "errorType": "RuntimeError"}
        return 200, headers, function.answer

    @staticmethod
    def _lambda_error(status: int, code: str, message: str, **extra):
        return status, {"x-amzn-ErrorType": code}, {"Type": "User", "message": message, **extra}

    # CloudFormation (query protocol, XML) ----------------------------------------------------------------------

    def _cloudformation(self, body: bytes):
        form = {key: values[-1] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}
        action = form.get("Action", "")
        self._record("cloudformation", action, form.get("StackName"))
        handler = getattr(self, f"_cfn_{action}", None)
        if handler is None:
            return self._cfn_error(400, "InvalidAction", f"{action} is not served here")
        return handler(form)

    def _cfn_DescribeStacks(self, form):
        stack = self.stacks.get(form["StackName"])
        if stack is None:
            return self._cfn_error(400, "ValidationError", f"Stack with id {form['StackName']} does not exist")
        parameters = "".join(f"<member><ParameterKey>{escape(k)}</ParameterKey><ParameterValue>{escape(v)}"
                             f"</ParameterValue></member>" for k, v in stack.parameters.items())
        outputs = "".join(f"<member><OutputKey>{escape(k)}</OutputKey><OutputValue>{escape(v)}</OutputValue>"
                          f"</member>" for k, v in self.outputs.items())
        return self._cfn_answer("DescribeStacks", f"<Stacks><member><StackName>{escape(stack.name)}</StackName>"
                                f"<StackId>{self._stack_arn(stack)}</StackId>"
                                "<CreationTime>2026-01-01T00:00:00.000Z</CreationTime>"
                                f"<StackStatus>{stack.status}</StackStatus><Parameters>{parameters}</Parameters>"
                                f"<Outputs>{outputs}</Outputs></member></Stacks>")

    def _cfn_GetTemplateSummary(self, form):
        stack = self.stacks[form["StackName"]]
        members = "".join(f"<member><ParameterKey>{escape(k)}</ParameterKey></member>"
                          for k in stack.template_parameters)
        return self._cfn_answer("GetTemplateSummary", f"<Parameters>{members}</Parameters>")

    def _cfn_CreateChangeSet(self, form):
        name, kind = form["StackName"], form.get("ChangeSetType", "UPDATE")
        if kind == "CREATE":
            self.stacks[name] = Stack(name, "REVIEW_IN_PROGRESS")
        stack = self.stacks[name]
        url = form.get("TemplateURL")
        if url:
            bucket, _, key = urlsplit(url).path.lstrip("/").partition("/")
            template = self.fetch_template(bucket, unquote(key))
        else:
            template = form["TemplateBody"]
        parameters, index = {}, 1
        while f"Parameters.member.{index}.ParameterKey" in form:
            key = form[f"Parameters.member.{index}.ParameterKey"]
            if form.get(f"Parameters.member.{index}.UsePreviousValue") == "true":
                parameters[key] = stack.parameters.get(key, "")
            else:
                parameters[key] = form[f"Parameters.member.{index}.ParameterValue"]
            index += 1
        capabilities = [form[k] for k in sorted(form) if k.startswith("Capabilities.member.")]
        change_set = f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:changeSet/{form['ChangeSetName']}/{uuid.uuid4()}"
        self.change_sets[change_set] = {"stack": name, "type": kind, "template": template,
                                        "templateUrl": url, "parameters": parameters, "capabilities": capabilities}
        return self._cfn_answer("CreateChangeSet", f"<Id>{change_set}</Id><StackId>{self._stack_arn(stack)}</StackId>")

    def _cfn_DescribeChangeSet(self, form):
        change_set = self.change_sets[form["ChangeSetName"]]
        return self._cfn_answer("DescribeChangeSet",
                                f"<ChangeSetName>{escape(form['ChangeSetName'])}</ChangeSetName>"
                                f"<StackName>{escape(change_set['stack'])}</StackName><Status>CREATE_COMPLETE</Status>"
                                "<ExecutionStatus>AVAILABLE</ExecutionStatus><Changes/>")

    def _cfn_ExecuteChangeSet(self, form):
        change_set = self.change_sets[form["ChangeSetName"]]
        stack = self.stacks[change_set["stack"]]
        if self.on_execute:
            self.on_execute(stack.name)
        stack.parameters = {**stack.parameters, **change_set["parameters"]}
        stack.template = change_set["template"]
        try:
            stack.template_parameters = sorted(json.loads(stack.template).get("Parameters", {}))
        except ValueError:
            stack.template_parameters = []
        stack.status = "CREATE_COMPLETE" if change_set["type"] == "CREATE" else "UPDATE_COMPLETE"
        return self._cfn_answer("ExecuteChangeSet", "")

    def _stack_arn(self, stack: Stack) -> str:
        return f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{stack.name}/{stack.stack_id}"

    @staticmethod
    def _cfn_answer(action: str, result: str):
        xml = (f'<{action}Response xmlns="{CFN_NS}"><{action}Result>{result}</{action}Result>'
               f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>")
        return 200, {"Content-Type": "text/xml"}, xml

    @staticmethod
    def _cfn_error(status: int, code: str, message: str):
        xml = (f'<ErrorResponse xmlns="{CFN_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
               f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
        return status, {"Content-Type": "text/xml"}, xml

    # HTTP ------------------------------------------------------------------------------------------------------

    def _record(self, *operation) -> None:
        with self._lock:
            self.operations.append(operation)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                if path.startswith(("/2015-03-31/", "/2016-08-19/", "/2019-09-30/")):
                    status, headers, answer = fake._lambda(self.command, path, body)
                else:
                    status, headers, answer = fake._cloudformation(body)
                payload = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
                try:
                    self.send_response(status)
                    headers = {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4()), **headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the CLI stopped waiting (its read timeout): the function ran all the same

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        return Handler
