"""How every client the product opens connects: one set of settings (INTERESTS_SECURITY_PROTOCOL,
INTERESTS_SASL_*, INTERESTS_SSL_*) for Faust, aiokafka and kafka-python alike, one SSL context per
process, and the password kept out of every log line.

aiokafka and kafka-python name their security options the same way, so `client_options` serves
both; Faust takes them as credentials (`faust_options`) and hands them to its aiokafka clients."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from streams.settings import Settings

MASK = "***"


class ConnectionSettingsError(ValueError):
    """A connection setting that cannot be used (a CA or key file that does not load)."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The process's one SSL context for these settings; None without TLS."""
    if not settings.uses_tls:
        return None
    return _context(settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile)


@functools.lru_cache(maxsize=4)
def _context(cafile: str, certfile: str, keyfile: str) -> ssl.SSLContext:
    # verifies the broker's chain and its host name, as every TLS client should
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionSettingsError(f"INTERESTS_SSL_CAFILE={cafile}: {_reason(exc)}") from None
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            where = keyfile or "(in the certificate file)"
            raise ConnectionSettingsError(f"INTERESTS_SSL_CERTFILE={certfile} / "
                                          f"INTERESTS_SSL_KEYFILE={where}: {_reason(exc)}") from None
    return context


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of every aiokafka and kafka-python client (consumer, producer, admin)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.uses_tls:
        options["ssl_context"] = ssl_context(settings)
    if settings.uses_sasl:
        options.update(sasl_mechanism=settings.sasl_mechanism, sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.password())
    return options


def faust_options(settings: Settings) -> dict[str, Any]:
    """`faust.App` keyword arguments: its producer, consumer and topic creation use them."""
    import faust

    if settings.uses_sasl:
        return {"broker_credentials": faust.SASLCredentials(
            username=settings.sasl_username, password=settings.password(), ssl_context=ssl_context(settings),
            mechanism=settings.sasl_mechanism)}
    if settings.uses_tls:
        return {"broker_credentials": faust.SSLCredentials(ssl_context(settings))}
    return {}


def describe(settings: Settings) -> str:
    """How the clients connect, for a log line or an error: never the password."""
    parts = [settings.security_protocol]
    if settings.uses_sasl:
        parts.append(f"{settings.sasl_mechanism} as {settings.sasl_username}")
    if settings.uses_tls:
        parts.append(f"CA {settings.ssl_cafile or 'of the system'}")
        if settings.ssl_certfile:
            parts.append(f"client certificate {settings.ssl_certfile}")
    return ", ".join(parts)


def hide_secrets(settings: Settings) -> None:
    """From now on no log record of this process carries the SASL password: every record is made
    with the password masked in its message and its arguments (a client library that logs its
    configuration at debug level included)."""
    if settings.uses_sasl:
        secret = settings.password()
        if secret:
            _install(secret)


_installed: set[str] = set()


def _install(secret: str) -> None:
    if secret in _installed:
        return
    _installed.add(secret)
    make: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def masked(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report
            return record
        if secret in message:
            record.msg, record.args = message.replace(secret, MASK), None
        if record.exc_info and record.exc_info[1] is not None and secret in str(record.exc_info[1]):
            record.exc_text = logging.Formatter().formatException(record.exc_info).replace(secret, MASK)
            record.exc_info = None
        return record

    logging.setLogRecordFactory(masked)


class ConnectionRefused(RuntimeError):
    """The cluster cannot be used with these settings: the message says why, in the user's terms."""


def check_connection(settings: Settings, timeout_s: float = 30.0) -> None:
    """Returns once a broker of the bootstrap list answers a metadata request over a connection
    made as every client makes it; raises `ConnectionRefused` at once for what a retry cannot
    mend (refused credentials, a certificate that does not verify, a listener of another protocol),
    and after `timeout_s` when no broker answers at all."""
    asyncio.run(probe(settings, timeout_s))


async def probe(settings: Settings, timeout_s: float = 30.0) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
    from aiokafka.protocol.metadata import MetadataRequest

    options = client_options(settings)
    servers = [_host_port(s) for s in settings.bootstrap.split(",")]
    deadline = time.monotonic() + timeout_s
    last, closed = "", 0
    while True:
        for host, port in servers:
            where = f"{host}:{port}"
            try:
                conn = await asyncio.wait_for(create_conn(host, port, request_timeout_ms=10_000, **options),
                                              10)
                try:
                    await asyncio.wait_for(conn.send(MetadataRequest([])), 10)
                finally:
                    conn.close()
                return
            except SaslAuthenticationFailed as exc:
                raise ConnectionRefused(
                    f"{where} refused {settings.sasl_mechanism} authentication as "
                    f"{settings.sasl_username!r}: "
                    f"{exc.args[0] if exc.args else exc}. The user name or the password is wrong "
                    "(INTERESTS_SASL_USERNAME, INTERESTS_SASL_PASSWORD or INTERESTS_SASL_PASSWORD_FILE), "
                    "or the cluster does not offer this mechanism (INTERESTS_SASL_MECHANISM).") from None
            except ssl.SSLCertVerificationError as exc:
                raise ConnectionRefused(
                    f"the certificate of {where} does not verify against "
                    f"{settings.ssl_cafile or 'the system CAs'} (INTERESTS_SSL_CAFILE): "
                    f"{exc.verify_message or exc.reason}") from None
            except ssl.SSLError as exc:
                hint = ("the broker wants a client certificate (INTERESTS_SSL_CERTFILE)"
                        if "certificate required" in str(exc) else
                        f"is {where} a TLS listener? "
                        f"INTERESTS_SECURITY_PROTOCOL={settings.security_protocol}")
                raise ConnectionRefused(f"TLS with {where} failed ({exc.reason or exc}): {hint}") from None
            except KafkaConnectionError as exc:
                # closed right after it opened, again and again: a listener of another protocol
                closed += 1
                last = str(exc)
                if closed >= 3:
                    certificate = (" or wants a client certificate (INTERESTS_SSL_CERTFILE)"
                                   if settings.uses_tls and not settings.ssl_certfile else "")
                    raise ConnectionRefused(
                        f"{where} closed every connection at once: its listener does not speak "
                        f"{describe(settings)} (INTERESTS_SECURITY_PROTOCOL, "
                        f"INTERESTS_SASL_MECHANISM){certificate}") from None
            except (TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if time.monotonic() > deadline:
            raise ConnectionRefused(f"no broker answered at {settings.bootstrap} within {timeout_s:.0f} s "
                                    f"({describe(settings)}): {last}")
        await asyncio.sleep(0.5)


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)
