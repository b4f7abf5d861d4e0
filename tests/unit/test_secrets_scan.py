"""The secret scan catches real-looking secrets and lets placeholders and SSM names through."""

from ops.secrets_scan import scan_template, scan_text

# Built at run time, so this file itself never holds a string the scan would flag.
AWS_KEY = "AKIA" + "Q" * 16
NEON_URL = "postgresql://app:" + "Xy7" * 6 + "@ep-cool-1.eu-central-1.aws.neon.tech/neondb"


def test_real_looking_secrets_are_found():
    assert scan_text(f"key = {AWS_KEY}") == ["AWS access key id"]
    assert scan_text(f"DATABASE_URL={NEON_URL}") == ["password in a URL"]
    assert scan_text('"R2_SECRET_ACCESS_KEY": "' + "a1b2" * 16 + '"') == ["credential assigned a long literal"]
    assert scan_text("-----BEGIN RSA " + "PRIVATE KEY-----") == ["private key"]


def test_placeholders_local_urls_and_ssm_names_pass():
    assert scan_text("postgresql://user:pass@host/db") == []
    assert scan_text("postgresql://postgres:anything@127.0.0.1:5432/uploads") == []
    assert scan_text('"R2_SECRET_ACCESS_KEY_SSM_PARAMETER": "/3d-ultra/prod/r2-secret-access-key"') == []


def test_a_template_with_a_literal_secret_variable_is_refused():
    template = {"Resources": {"APIHandler": {"Properties": {"Environment": {"Variables": {
        "DATABASE_URL": "postgresql://x", "R2_BUCKET": "uploads"}}}}}}

    assert scan_template(template) == [
        "APIHandler: DATABASE_URL is set literally; give DATABASE_URL_SSM_PARAMETER instead"]
