"""The browser client's session, retry, file-type and upload logic, under Node's own test runner."""

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def test_the_client_modules_pass_their_node_tests():
    node = shutil.which("node")
    assert node, "Node.js is required for the client's unit tests (apt-get install nodejs; .ci/run installs it)"
    result = subprocess.run([node, "--test", str(HERE)], capture_output=True, text=True, timeout=120)
    print(result.stdout[-20000:], result.stderr[-5000:])
    assert result.returncode == 0, "node --test failed; its output is above"
    assert "# fail 0" in result.stdout
