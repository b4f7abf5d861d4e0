"""Every `aws` command the README writes out (its shell blocks and its inline commands) is one the pinned CLI
(`awscli` v1 beside the interpreter) accepts: each is run for real, its placeholders and shell variables filled
with dummy values, against an endpoint that refuses connections. A command the CLI parsed whole gets as far as
"Could not connect to the endpoint URL"; an unknown option, command or malformed value fails here first (as
`--cli-binary-format` and `logs tail`, both CLI v2 only, did)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# The README and the documentation it links to, read as one text.
README = "\n".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
PINNED_CLI = Path(sys.executable).parent / "aws"
SEPARATORS = {"|", "||", "&&", ";", ")", ">", ">>", "&"}
# Innermost first: `$(date +%s)`, then `$(( (1 - 1) * 1000 ))`, then variables.
SUBSTITUTION = re.compile(r"\$\(\([^()]*(?:\([^()]*\)[^()]*)*\)\)|\$\([^()]*\)|\$\{?\w+\}?")


def commands_in(line: str) -> list[list[str]]:
    """The `aws ...` commands of one shell line, each as its words, command substitutions searched too."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words, found = list(lexer), []
    for index, word in enumerate(words):
        for inner in re.findall(r"\$\((aws .*)\)", word):
            found += commands_in(inner)
        if word == "aws" and (index == 0 or words[index - 1] in SEPARATORS | {"("} or words[index - 1].endswith("$")):
            command = []
            for following in words[index:]:
                if following in SEPARATORS:
                    break
                command.append(following)
            found.append(command)
    return found


def readme_commands() -> list[tuple[str, list[str]]]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    found = [(line.strip(), command) for block in blocks for line in block.splitlines()
             for command in commands_in(line)]
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        text = " ".join(span.split())
        if text.startswith("aws "):
            found.append((text, shlex.split(text)))
    return found


def runnable(words: list[str]) -> list[str]:
    """Placeholders (`<bucket>`) and shell expansions (`$1`, `$(date ...)`, `$((...))`) as dummy values."""
    def fill(word):
        word = re.sub(r"<[^<>]+>", "x", word)
        while SUBSTITUTION.search(word):
            word = SUBSTITUTION.sub("1", word)
        return word

    return [fill(word) for word in words]


COMMANDS = readme_commands()


def test_the_readme_writes_the_commands_the_deploy_runbook_and_set_up_need():
    written = {" ".join(words[:3]) for _, words in COMMANDS}
    assert {"aws apigateway get-account", "aws apigateway update-account", "aws ssm put-parameter",
            "aws ssm get-parameter", "aws logs filter-log-events", "aws cloudformation describe-stack-events",
            "aws cloudformation delete-stack", "aws cloudformation wait", "aws s3 ls",
            "aws iam create-role"} <= written
    assert "aws logs tail" not in README
    assert not any("--cli-binary-format" in words for _, words in COMMANDS)


@pytest.mark.parametrize("line, words", COMMANDS, ids=[" ".join(w[:3]) for _, w in COMMANDS])
def test_the_pinned_cli_accepts_each_aws_command_of_the_readme(line, words, tmp_path):
    port = free_port()  # nothing listens there
    env = {"PATH": f"{PINNED_CLI.parent}:/usr/bin:/bin", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-central-1",
           "AWS_MAX_ATTEMPTS": "1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}

    result = subprocess.run([str(PINNED_CLI), *runnable(words)[1:], "--cli-connect-timeout", "1"], env=env,
                            input="a value on stdin", capture_output=True, text=True, timeout=60)

    assert "Could not connect to the endpoint URL" in result.stderr, f"{line}\n{result.stderr}"
