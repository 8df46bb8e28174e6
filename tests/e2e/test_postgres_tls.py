"""TLS between keyhole and PostgreSQL (issue 14): libpq's `sslmode` and `sslrootcert` in the
`--state` URL.

The test makes a CA and a server certificate for 127.0.0.1 and localhost (Python's
`cryptography`), starts a private cluster (`pg_cluster.PgCluster`) listening on 127.0.0.1 and
127.0.0.2 with `ssl=on` and a pg_hba.conf that accepts TCP connections only over TLS
(`hostssl`, SCRAM passwords), and shows that:

- `sslmode=verify-full&sslrootcert=CA` connects over TLS (PostgreSQL's `pg_stat_ssl` says so)
  and the node serves, with the password kept out of its output;
- `verify-full` with another CA is refused at start with an error naming the fix;
- `verify-full` to 127.0.0.2, an address the certificate does not list, is refused, while
  `verify-ca` (the chain only) connects;
- `sslmode=disable` is refused by the `hostssl`-only pg_hba.conf;
- a server without TLS (a second, plain cluster) is refused at start under `sslmode=require`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import start_server
from e2e_helpers import REGION, free_port, keyhole_bin, make_client
from pg_cluster import PgCluster

PASSWORD = "tls-test-" + uuid.uuid4().hex[:12]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_cert(ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name("keyhole-test-postgres")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """A cluster with ssl=on, TCP over TLS only; yields (cluster, CA file, other CA file)."""
    pki = tmp_path_factory.mktemp("pg-pki")
    ca_key, ca_cert = _ca("keyhole test CA")
    _, other_ca = _ca("another CA")
    key, cert = _server_cert(ca_key, ca_cert)
    (pki / "ca.pem").write_bytes(_pem(ca_cert))
    (pki / "other-ca.pem").write_bytes(_pem(other_ca))
    hba = (
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        "hostssl all all 127.0.0.2/32 scram-sha-256\n"
    )
    files = {
        "server.crt": _pem(cert),
        "server.key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
    }
    cluster = PgCluster(hba=hba, files=files, listen="127.0.0.1,127.0.0.2",
                        settings=["ssl=on", "ssl_cert_file=../server.crt", "ssl_key_file=../server.key"])
    cluster.sql(f"ALTER ROLE keyhole PASSWORD '{PASSWORD}'")
    try:
        yield cluster, pki / "ca.pem", pki / "other-ca.pem", pki / "master.key"
    finally:
        cluster.destroy()


def _url(cluster: PgCluster, query: str, host: str = "127.0.0.1") -> str:
    return f"postgres://keyhole:{PASSWORD}@{host}:{cluster.port}/keyhole?{query}"


def _serve_fails(base: Path, url: str, key: Path) -> str:
    """Starts `keyhole serve` on `url`, expects it to exit non-zero within a minute; its stderr."""
    r = subprocess.run(
        [str(keyhole_bin()), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(base / "data"),
         "--state", url, "--master-key-file", str(key)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))},
    )
    assert r.returncode != 0, f"keyhole served on {url!r}:\n{r.stdout}\n{r.stderr}"
    out = r.stdout + r.stderr
    assert PASSWORD not in out, out
    return r.stderr


def test_verify_full_with_the_right_ca_connects_over_tls_and_serves(tls_cluster, tmp_path):
    cluster, ca, _, key = tls_cluster
    node = start_server(tmp_path / "a", extra_args=[
        "--state", _url(cluster, f"sslmode=verify-full&sslrootcert={ca}&application_name=keyhole-tls"),
        "--master-key-file", str(key)])
    try:
        banner = node.stdout_text()
        assert "sslmode=verify-full: TLS, certificate and host name verified" in banner, banner
        ak, sk = node.credentials()
        s3 = make_client(node.endpoint, ak, sk)
        bucket = f"tls-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"over tls")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"over tls"
        # A control-plane write goes through the database too.
        iam = boto3.session.Session().client("iam", endpoint_url=node.endpoint, region_name=REGION,
                                             aws_access_key_id=ak, aws_secret_access_key=sk)
        iam.create_user(UserName=f"u-{uuid.uuid4().hex[:6]}")
        # PostgreSQL's own view: every connection of this node is TLS.
        rows = cluster.sql(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = 'keyhole-tls'").split()
        assert rows and set(rows) == {"t"}, rows
        assert PASSWORD not in node.stdout_text() + node.logs()
    finally:
        node.stop()


def test_verify_full_with_another_ca_is_refused_at_start(tls_cluster, tmp_path):
    cluster, _, other_ca, key = tls_cluster
    err = _serve_fails(tmp_path, _url(cluster, f"sslmode=verify-full&sslrootcert={other_ca}"), key)
    assert "certificate was refused" in err and "sslrootcert must hold the CA" in err, err


def test_verify_full_checks_the_host_and_verify_ca_does_not(tls_cluster, tmp_path):
    cluster, ca, _, key = tls_cluster
    err = _serve_fails(tmp_path / "full", _url(cluster, f"sslmode=verify-full&sslrootcert={ca}", host="127.0.0.2"), key)
    assert "does not name the host" in err and "verify-ca" in err, err
    node = start_server(tmp_path / "ca", extra_args=[
        "--state", _url(cluster, f"sslmode=verify-ca&sslrootcert={ca}", host="127.0.0.2"),
        "--master-key-file", str(key)])
    try:
        ak, sk = node.credentials()
        make_client(node.endpoint, ak, sk).list_buckets()
    finally:
        node.stop()


def test_hostssl_only_refuses_a_connection_without_tls(tls_cluster, tmp_path):
    cluster, _, _, key = tls_cluster
    err = _serve_fails(tmp_path, _url(cluster, "sslmode=disable"), key)
    assert "no pg_hba.conf entry" in err and "no encryption" in err, err


def test_require_is_refused_by_a_server_without_tls(tmp_path):
    plain = PgCluster()  # ssl is off by default
    try:
        plain.sql(f"ALTER ROLE keyhole PASSWORD '{PASSWORD}'")
        err = _serve_fails(tmp_path, _url(plain, "sslmode=require"), tmp_path / "master.key")
        assert "does not offer TLS" in err and "sslmode=require" in err, err
    finally:
        plain.destroy()
