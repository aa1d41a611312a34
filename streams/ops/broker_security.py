"""What makes the local Apache Kafka a secured cluster (`interests broker --kind kafka --secured`,
the security tests): certificates made for its data dir, SCRAM users created at format time,
and the configuration of `deploy/kafka/secured.properties`.

Listeners: clients on SASL_SSL with SCRAM-SHA-512 (the broker's own port), mutual TLS on a second
port (a client certificate's CN is its principal), and the broker towards its KRaft controller on
SASL/PLAIN with a user of its own, so that nobody reaching the controller port is a super user.
The StandardAuthorizer refuses whatever no ACL allows; `admin` is the super user.

Everything secret lives under `<data dir>/security`, readable by its owner only: the passwords in
`users.json`, the keys next to their certificates (PEM, PKCS#8, unencrypted)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ADMIN = "admin"  # the super user: creates the ACLs and SCRAM users
CONTROLLER = "controller"  # the broker towards its controller (SASL/PLAIN)
MECHANISM = "SCRAM-SHA-512"
CERT_DAYS = 30


@dataclass(frozen=True)
class BrokerSecurity:
    """The secrets of one secured data dir, made once and kept (a restart reuses them)."""

    folder: Path
    passwords: dict[str, str]  # user -> password; `admin`, `controller` and the application users

    @property
    def cafile(self) -> Path:
        return self.folder / "ca.pem"

    def certfile(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def keyfile(self, name: str) -> Path:
        return self.folder / f"{name}-key.pem"

    @property
    def users(self) -> tuple[str, ...]:
        """The SCRAM users (everyone but the controller's own PLAIN user)."""
        return tuple(u for u in self.passwords if u != CONTROLLER)

    def client_env(self, user: str, bootstrap_url: str, mutual_tls: bool = False) -> dict[str, str]:
        """The INTERESTS_* connection settings of `user`: SASL_SSL with SCRAM, or mutual TLS with
        the user's certificate (then `bootstrap_url` must name the mutual-TLS port)."""
        env = {"INTERESTS_BROKER": bootstrap_url, "INTERESTS_SSL_CAFILE": str(self.cafile)}
        if mutual_tls:
            return {**env, "INTERESTS_SECURITY_PROTOCOL": "SSL",
                    "INTERESTS_SSL_CERTFILE": str(self.certfile(user)),
                    "INTERESTS_SSL_KEYFILE": str(self.keyfile(user))}
        return {**env, "INTERESTS_SECURITY_PROTOCOL": "SASL_SSL", "INTERESTS_SASL_MECHANISM": MECHANISM,
                "INTERESTS_SASL_USERNAME": user, "INTERESTS_SASL_PASSWORD": self.passwords[user]}

    def java_client_config(self, user: str = ADMIN) -> Path:
        """A client properties file for Kafka's own tools (`--command-config`), as `user`."""
        path = self.folder / f"{user}.properties"
        _write_private(path, "\n".join([
            "security.protocol=SASL_SSL", f"sasl.mechanism={MECHANISM}",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user}" password="{self.passwords[user]}";',
            "ssl.truststore.type=PEM", f"ssl.truststore.location={self.cafile}", ""]))
        return path

    def server_config(self, host: str, mtls_port: int) -> dict[str, str]:
        """The values `deploy/kafka/secured.properties` is filled in with."""
        return {"mtls_port": str(mtls_port), "security_dir": str(self.folder.resolve()),
                "admin_password": self.passwords[ADMIN], "controller_password": self.passwords[CONTROLLER]}

    def scram_arguments(self) -> list[str]:
        """`StorageTool format` arguments that create every SCRAM user with the cluster."""
        out = []
        for user in self.users:
            out += ["--add-scram", f"{MECHANISM}=[name={user},password={self.passwords[user]}]"]
        return out


def broker_security(data_dir: Path, host: str, users: tuple[str, ...] = ("app",)) -> BrokerSecurity:
    """The data dir's secrets: read where they exist, else made (a CA, the broker's certificate
    for `host` and localhost, a certificate and a password for each user)."""
    folder = data_dir / "security"
    users_file = folder / "users.json"
    if users_file.is_file():
        return BrokerSecurity(folder, json.loads(users_file.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    passwords = {name: secrets.token_urlsafe(18) for name in (ADMIN, CONTROLLER, *users)}
    ca_key, ca_cert = _certificate("realtime-interests local CA", None, is_ca=True)
    _write_private(folder / "ca-key.pem", _pem_key(ca_key))
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
    key, cert = _certificate("broker", (ca_key, ca_cert), alt_names=names)
    # Kafka's PEM keystore: the private key and its certificate chain in one file
    _write_private(folder / "broker.pem", _pem_key(key) + _pem_chain(cert, ca_cert))
    for user in (ADMIN, *users):
        key, cert = _certificate(user, (ca_key, ca_cert))
        _write_private(folder / f"{user}-key.pem", _pem_key(key))
        (folder / f"{user}.pem").write_bytes(_pem_chain(cert, ca_cert))
    _write_private(users_file, json.dumps(passwords))  # last: its presence means all is made
    return BrokerSecurity(folder, passwords)


def _certificate(common_name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
                 is_ca: bool = False, alt_names: list[x509.GeneralName] | None = None,
                 ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signer_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return key, builder.sign(signer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_chain(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write_private(path: Path, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
