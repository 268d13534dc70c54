"""One mapping of the Kafka security settings, for aiokafka and reporting's faststream broker;
the SASL password is a secret that no repr or dump shows."""

from __future__ import annotations

import pytest
from faststream.security import SASLPlaintext, SASLScram256
from pydantic import ValidationError

from huibao_platform.kafka import client_options, security
from huibao_reporting.entrypoints.kafka import _security
from huibao_reporting.settings import ReportingSettings

SECRET = "s3cret-Password"


def _settings(**env: str) -> ReportingSettings:
    return ReportingSettings.model_validate(env)


def test_sasl_ssl_maps_the_same_for_aiokafka_and_faststream() -> None:
    s = _settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="scram-sha-256",
        KAFKA_SASL_USERNAME="huibao-reporting",
        KAFKA_SASL_PASSWORD=SECRET,
    )
    opts = client_options(s)
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == (
        "huibao-reporting",
        SECRET,
    )
    assert opts["ssl_context"] is not None
    broker_security = _security(s)
    assert isinstance(broker_security, SASLScram256)
    assert broker_security.username == "huibao-reporting"
    assert broker_security.password == SECRET
    assert broker_security.use_ssl


def test_the_password_is_secret() -> None:
    s = _settings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_PASSWORD=SECRET)
    assert SECRET not in repr(s)
    assert SECRET not in s.model_dump_json()
    assert SECRET not in repr(security(s))
    plain = _security(
        _settings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN")
    )
    assert isinstance(plain, SASLPlaintext)
    assert not plain.use_ssl


def test_plaintext_sends_no_credentials() -> None:
    s = _settings(KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD=SECRET)
    assert client_options(s) == {
        "bootstrap_servers": s.kafka_bootstrap_servers,
        "security_protocol": "PLAINTEXT",
    }
    assert _security(s) is None


def test_an_unknown_mechanism_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"KAFKA_SASL_MECHANISM|kafka_sasl_mechanism"):
        _settings(KAFKA_SASL_MECHANISM="GSSAPI")
