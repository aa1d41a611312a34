"""Connection settings: one set for every client, validated at the edge, the password never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streams.connection import (
    MASK,
    ConnectionSettingsError,
    _install,
    client_options,
    describe,
    faust_options,
)
from streams.ops.broker_security import broker_security
from streams.settings import Settings

SCRAM = {"INTERESTS_SECURITY_PROTOCOL": "SASL_SSL", "INTERESTS_SASL_MECHANISM": "SCRAM-SHA-512",
         "INTERESTS_SASL_USERNAME": "app", "INTERESTS_SASL_PASSWORD": "pw-5f1c0e"}


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    s = Settings()
    assert client_options(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_options(s) == {}


def test_sasl_ssl_gives_every_client_the_same_context_and_credentials(tmp_path: Path) -> None:
    ca = broker_security(tmp_path, "127.0.0.1").cafile
    s = Settings.from_env({**SCRAM, "INTERESTS_SSL_CAFILE": str(ca)})
    options = client_options(s)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "app" and options["sasl_plain_password"] == "pw-5f1c0e"
    assert options["ssl_context"] is client_options(s)["ssl_context"]  # one context per process
    creds = faust_options(s)["broker_credentials"]
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.ssl_context is options["ssl_context"]
    assert "pw-5f1c0e" not in repr(creds) + repr(s) + str(s.public()) + describe(s)
    assert s.public()["sasl_password"] == MASK
    assert Settings.from_env(s.to_env()) == s  # a worker child process gets the same settings


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    security = broker_security(tmp_path, "127.0.0.1")
    s = Settings.from_env({"INTERESTS_SECURITY_PROTOCOL": "SSL", "INTERESTS_SSL_CAFILE": str(security.cafile),
                           "INTERESTS_SSL_CERTFILE": str(security.certfile("app")),
                           "INTERESTS_SSL_KEYFILE": str(security.keyfile("app"))})
    options = client_options(s)
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert faust_options(s)["broker_credentials"].protocol.value == "SSL"
    wrong = Settings.from_env({"INTERESTS_SECURITY_PROTOCOL": "SSL",  # a certificate with no key
                               "INTERESTS_SSL_CAFILE": str(security.cafile),
                               "INTERESTS_SSL_CERTFILE": str(security.cafile)})
    with pytest.raises(ConnectionSettingsError, match="INTERESTS_SSL_CERTFILE"):
        client_options(wrong)
    with pytest.raises(ConnectionSettingsError, match="INTERESTS_SSL_CAFILE"):
        client_options(Settings.from_env({"INTERESTS_SECURITY_PROTOCOL": "SSL",
                                          "INTERESTS_SSL_CAFILE": str(tmp_path / "missing.pem")}))


def test_the_password_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    env = {k: v for k, v in SCRAM.items() if k != "INTERESTS_SASL_PASSWORD"}
    s = Settings.from_env({**env, "INTERESTS_SASL_PASSWORD_FILE": str(secret)})
    assert client_options(s)["sasl_plain_password"] == "from-a-file"
    secret.write_text("rotated")
    assert client_options(s)["sasl_plain_password"] == "rotated"
    secret.unlink()
    with pytest.raises(ValueError, match="INTERESTS_SASL_PASSWORD_FILE"):
        client_options(s)


@pytest.mark.parametrize(("change", "message"), [
    ({"INTERESTS_SECURITY_PROTOCOL": "TLS"}, "INTERESTS_SECURITY_PROTOCOL must be one of"),
    ({"INTERESTS_SASL_MECHANISM": "GSSAPI"}, "INTERESTS_SASL_MECHANISM must be one of"),
    ({"INTERESTS_SASL_USERNAME": ""}, "needs INTERESTS_SASL_USERNAME"),
    ({"INTERESTS_SASL_PASSWORD": ""}, "needs INTERESTS_SASL_USERNAME and INTERESTS_SASL_PASSWORD"),
    ({"INTERESTS_SASL_PASSWORD_FILE": "/run/secrets/kafka"}, "not both"),
    ({"INTERESTS_SSL_KEYFILE": "/tmp/key.pem"}, "INTERESTS_SSL_CERTFILE, which is not set"),
])
def test_incomplete_security_settings_are_refused(change: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        Settings.from_env({**SCRAM, **change})
    assert "pw-5f1c0e" not in str(caught.value)


def test_no_log_record_carries_the_password(caplog: pytest.LogCaptureFixture) -> None:
    secret = "unit-secret-9d2b7a"
    _install(secret)
    log = logging.getLogger("kafka.admin.client")
    with caplog.at_level(logging.DEBUG):
        # what kafka-python's admin client logs at debug level: its whole configuration
        log.debug("Starting KafkaAdminClient with configuration: %s", {"sasl_plain_password": secret})
        log.info(f"plain {secret} message")
        try:
            raise RuntimeError(f"refused with {secret}")
        except RuntimeError:
            log.exception("failed")
    text = caplog.text + "".join(logging.Formatter().format(r) for r in caplog.records)
    assert secret not in text
    assert text.count(MASK) >= 3


def test_the_principal_of_a_client_certificate_is_its_common_name(tmp_path: Path) -> None:
    from streams.access import principal_of

    security = broker_security(tmp_path, "127.0.0.1", users=("recs",))
    mutual = Settings.from_env({"INTERESTS_SECURITY_PROTOCOL": "SSL",
                                "INTERESTS_SSL_CERTFILE": str(security.certfile("recs")),
                                "INTERESTS_SSL_KEYFILE": str(security.keyfile("recs"))})
    assert principal_of(mutual) == "User:recs"
    assert principal_of(Settings.from_env(SCRAM)) == "User:app"
    assert principal_of(Settings()) == "User:ANONYMOUS"
