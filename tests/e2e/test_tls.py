"""HTTPS (issue 4, DESIGN.md section 1 "optional TLS"): `keyhole serve --tls-cert --tls-key`.

A self-signed certificate for 127.0.0.1 and localhost is made at test time. boto3 (verify=CERT),
aws-cli (--ca-bundle) and keyhole's own CLI (AWS_CA_BUNDLE) talk to the gateway over HTTPS;
`aws:SecureTransport` is "true" there and "false" on the shared plain-HTTP server, which a bucket
policy in AWS's documented form sees; audit events say `tls`; a plain-HTTP client on the HTTPS
port gets a clean 400 and the server keeps serving.

References:
- Deny when aws:SecureTransport is "false": https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html
  and https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingEncryptionInTransit.html
- AWS_CA_BUNDLE / ca_bundle: https://docs.aws.amazon.com/sdkref/latest/guide/feature-gen-config.html
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from e2e_helpers import (
    REGION,
    aws_bin,
    aws_env,
    keyhole_bin,
    keyhole_cli,
    make_client,
    unique_bucket_name,
    wait_for_events,
)


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A fresh EC P-256 certificate for localhost and 127.0.0.1 (not a CA) and its key, as PEM."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    openssl = shutil.which("openssl")
    if openssl:
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:FALSE"],
            check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
        )
        return cert, key
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.fail("neither the openssl command nor python's cryptography package is available to make a "
                    "test certificate", pytrace=False)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(fresh_server_factory, tls_files):
    cert, key = tls_files
    kp = fresh_server_factory(extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    assert kp.endpoint.startswith("https://")
    return kp


def deny_insecure_transport(bucket: str) -> str:
    """AWS's documented bucket policy that refuses every request not made over HTTPS."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowSSLRequestsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def events_of(data_dir: Path, bucket: str, name: str, count: int = 1) -> list[dict]:
    """The `completed` events of operation `name` on `bucket` once `count` of them are on disk."""
    def matching(events):
        return [e for e in events if e.get("eventName") == name and e.get("stage") == "completed"
                and e.get("requestParameters", {}).get("bucketName") == bucket]
    return matching(wait_for_events(data_dir, lambda ev: len(matching(ev)) >= count))


def test_boto3_and_aws_cli_work_over_https_with_the_certificate_trusted(tls_server, tls_files, tmp_path):
    cert, _ = tls_files
    kp = tls_server
    assert f"endpoint:         https://127.0.0.1:{kp.port}" in kp.stdout_text()
    ak, sk = kp.credentials()

    s3 = make_client(kp.endpoint, ak, sk, verify=str(cert))
    s3.create_bucket(Bucket="over-tls")
    s3.put_object(Bucket="over-tls", Key="a/b.txt", Body=b"sealed in transit")
    assert s3.get_object(Bucket="over-tls", Key="a/b.txt")["Body"].read() == b"sealed in transit"

    # Without trusting the certificate, boto3 refuses the connection (certificate check), as it
    # would for any self-signed endpoint.
    untrusting = make_client(kp.endpoint, ak, sk)
    with pytest.raises(botocore.exceptions.SSLError):
        untrusting.list_buckets()

    # aws-cli with --ca-bundle: upload, list, download.
    env = aws_env(kp.creds_path)
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(300_000))
    base = [aws_bin(), "--endpoint-url", kp.endpoint, "--ca-bundle", str(cert)]
    for args in (["s3", "cp", str(src), "s3://over-tls/cli/up.bin"],
                 ["s3", "ls", "s3://over-tls/cli/"],
                 ["s3", "cp", "s3://over-tls/cli/up.bin", str(tmp_path / "down.bin")]):
        cp = subprocess.run(base + args, env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
        assert cp.returncode == 0, f"aws {' '.join(args)}: {cp.stderr[-2000:]}"
    assert (tmp_path / "down.bin").read_bytes() == src.read_bytes()

    # The line the banner prints works as pasted (it carries --ca-bundle).
    [line] = [ln.strip() for ln in kp.stdout_text().splitlines() if "aws --endpoint-url" in ln]
    assert f"--ca-bundle {cert}" in line, line
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(HOME=str(home), PATH=f"{Path(aws_bin()).parent}:{clean.get('PATH', '')}")
    cp = subprocess.run(["bash", "-c", line], env=clean, capture_output=True, text=True, timeout=120,
                        stdin=subprocess.DEVNULL, cwd=home)
    assert cp.returncode == 0 and "over-tls" in cp.stdout, cp.stderr[-2000:]


def test_secure_transport_is_true_over_https_and_false_over_http(tls_server, tls_files, server, s3):
    cert, _ = tls_files
    kp = tls_server
    tls_s3 = make_client(kp.endpoint, *kp.credentials(), verify=str(cert))
    bucket = unique_bucket_name("secure-transport")

    # HTTPS: AWS's deny-if-not-secure policy lets the requests through.
    tls_s3.create_bucket(Bucket=bucket)
    tls_s3.put_bucket_policy(Bucket=bucket, Policy=deny_insecure_transport(bucket))
    tls_s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert tls_s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    [put] = events_of(kp.data_dir, bucket, "PutObject")
    assert put["tls"] is True and put["decision"] == "Allow", put
    [get] = events_of(kp.data_dir, bucket, "GetObject")
    assert get["tls"] is True and get["decision"] == "Allow", get

    # The key is really "true" (not merely absent, which a Bool "false" test would not match
    # either): a policy denying GetObject when it is "true" denies it over HTTPS.
    other = unique_bucket_name("secure-true")
    tls_s3.create_bucket(Bucket=other)
    tls_s3.put_object(Bucket=other, Key="k", Body=b"v")
    tls_s3.put_bucket_policy(Bucket=other, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{other}/*",
                       "Condition": {"Bool": {"aws:SecureTransport": "true"}}}],
    }))
    with pytest.raises(ClientError) as e:
        tls_s3.get_object(Bucket=other, Key="k")
    assert e.value.response["Error"]["Code"] == "AccessDenied"

    # Plain HTTP (the shared server), same policy: even root is refused by the explicit Deny.
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_bucket_policy(Bucket=bucket, Policy=deny_insecure_transport(bucket))
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=bucket, Key="k", Body=b"in the clear")
        assert e.value.response["Error"]["Code"] == "AccessDenied"
        assert "explicit deny" in e.value.response["Error"]["Message"]
        [denied] = events_of(server.data_dir, bucket, "PutObject")
        assert denied["tls"] is False and denied["decision"] == "Deny", denied
    finally:
        # Root can always manage the bucket policy; then the bucket can go.
        s3.delete_bucket_policy(Bucket=bucket)
        s3.delete_bucket(Bucket=bucket)


def test_every_https_event_says_tls_and_plain_ones_do_not(tls_server, tls_files, server, s3):
    cert, _ = tls_files
    kp = tls_server
    make_client(kp.endpoint, *kp.credentials(), verify=str(cert)).list_buckets()
    s3.list_buckets()
    tls_events = wait_for_events(kp.data_dir, lambda ev: any(e["eventName"] == "ListBuckets" for e in ev))
    assert tls_events and all(e["tls"] is True for e in tls_events), tls_events
    plain = [e for e in wait_for_events(server.data_dir, lambda ev: any(e["eventName"] == "ListBuckets" for e in ev))
             if e["eventName"] == "ListBuckets"]
    assert plain and all(e["tls"] is False for e in plain)


def test_a_plaintext_client_on_the_https_port_fails_cleanly(tls_server, tls_files):
    cert, _ = tls_files
    kp = tls_server
    # Plain HTTP: a 400 in S3's error form telling the client to use https://.
    conn = http.client.HTTPConnection("127.0.0.1", kp.port, timeout=15)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    assert resp.status == 400, body
    assert "<Code>BadRequest</Code>" in body and "https://" in body, body

    # An SDK pointed at http:// gets that 400 as an error, not a hang or a garbled response.
    http_client = make_client(f"http://127.0.0.1:{kp.port}", *kp.credentials())
    with pytest.raises(ClientError) as e:
        http_client.list_buckets()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    # A broken handshake (a TLS record header followed by junk) is dropped.
    with socket.create_connection(("127.0.0.1", kp.port), timeout=15) as s:
        s.sendall(bytes([0x16, 0x03, 0x01, 0x00, 0x05]) + b"junk!")
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
    assert b"HTTP/1.1" not in data

    # A client that trusts a different certificate aborts its handshake.
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", kp.port), timeout=15) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")

    # The server is still up and serving HTTPS.
    assert kp.alive()
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("127.0.0.1", kp.port, timeout=15, context=context)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok\n"
    finally:
        conn.close()
    assert "panicked" not in kp.stderr_text()


def keyhole_env(kp, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHOLE_"))}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(kp.creds_path), AWS_CONFIG_FILE="/dev/null", AWS_REGION=REGION,
               KEYHOLE_ENDPOINT=kp.endpoint)
    env.update(extra)
    return env


def test_the_keyhole_cli_reaches_an_https_gateway_through_aws_ca_bundle(tls_server, tls_files):
    cert, _ = tls_files
    kp = tls_server
    run = lambda **extra: subprocess.run([str(keyhole_bin()), "job", "list"], env=keyhole_env(kp, **extra),
                                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    ok = run(AWS_CA_BUNDLE=str(cert))
    assert ok.returncode == 0, ok.stderr
    refused = run()
    assert refused.returncode != 0
    assert "certificate" in refused.stderr.lower(), refused.stderr
    missing = run(AWS_CA_BUNDLE="/nonexistent/ca.pem")
    assert missing.returncode != 0 and "AWS_CA_BUNDLE" in missing.stderr and "/nonexistent/ca.pem" in missing.stderr


JOB_PY = textwrap.dedent("""
    import sys, boto3
    s3 = boto3.client("s3")  # endpoint, region, credentials and CA bundle all from the environment
    body = s3.get_object(Bucket=sys.argv[1], Key="in/data.txt")["Body"].read()
    s3.put_object(Bucket=sys.argv[1], Key="out/copy.txt", Body=body)
""")


def test_keyhole_run_over_https_gives_the_job_the_ca_bundle(tls_server, tls_files, tmp_path):
    cert, _ = tls_files
    kp = tls_server
    s3 = make_client(kp.endpoint, *kp.credentials(), verify=str(cert))
    bucket = unique_bucket_name("tls-run")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/data.txt", Body=b"through tls")
    job = tmp_path / "job.py"
    job.write_text(JOB_PY)
    r = subprocess.run([str(keyhole_bin()), "run", "--read", f"s3://{bucket}/in/", "--write", f"s3://{bucket}/out/",
                        "--for", "5m", "--", sys.executable, str(job), bucket],
                       env=keyhole_env(kp, AWS_CA_BUNDLE=str(cert)), capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert s3.get_object(Bucket=bucket, Key="out/copy.txt")["Body"].read() == b"through tls"


def test_sighup_serves_a_renewed_certificate_without_a_restart(fresh_server_factory, tmp_path):
    """SIGHUP reads the certificate and key files again: new connections get the renewed
    certificate, and boto3 trusting only the new one works. A pair that does not load (the key
    is not the certificate's) is refused with an error in the log and the previous certificate
    is still served."""
    first_dir, second_dir, third_dir = (tmp_path / n for n in ("a", "b", "c"))
    for d in (first_dir, second_dir, third_dir):
        d.mkdir()
    cert, key = make_self_signed(first_dir)
    live_cert, live_key = tmp_path / "live-cert.pem", tmp_path / "live-key.pem"
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    kp = fresh_server_factory(extra_args=["--tls-cert", str(live_cert), "--tls-key", str(live_key)])

    def served() -> str:
        return ssl.get_server_certificate(("127.0.0.1", kp.port))

    def same(pem_a: str, pem_b: str) -> bool:
        return ssl.PEM_cert_to_DER_cert(pem_a) == ssl.PEM_cert_to_DER_cert(pem_b)

    assert same(served(), cert.read_text())
    new_cert, new_key = make_self_signed(second_dir)
    shutil.copy(new_cert, live_cert)
    shutil.copy(new_key, live_key)
    kp.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not same(served(), new_cert.read_text()):
        assert time.monotonic() < deadline, kp.logs()
        time.sleep(0.1)
    ak, sk = kp.credentials()
    s3 = make_client(kp.endpoint, ak, sk, verify=str(new_cert))
    s3.list_buckets()
    # A certificate whose key was not replaced with it: refused, the renewed one stays.
    other_cert, _ = make_self_signed(third_dir)
    shutil.copy(other_cert, live_cert)
    kp.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "the TLS certificate was NOT reloaded" not in kp.stderr_text() + kp.stdout_text():
        assert time.monotonic() < deadline, kp.logs()
        time.sleep(0.1)
    assert kp.proc.poll() is None
    assert same(served(), new_cert.read_text())
    s3.list_buckets()
    # Review 30, F1: a named pipe in place of the certificate used to freeze the gateway (the
    # reload blocked opening it). It is refused at once; the gateway keeps serving and stops.
    live_cert.unlink()
    os.mkfifo(live_cert)
    kp.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while (kp.stderr_text() + kp.stdout_text()).count("the TLS certificate was NOT reloaded") < 2:
        assert time.monotonic() < deadline, kp.logs()
        time.sleep(0.1)
    assert "not a regular file" in kp.stderr_text() + kp.stdout_text()
    s3.list_buckets()
    assert same(served(), new_cert.read_text())
    assert kp.stop(timeout=10) == 0


def test_one_tls_file_without_the_other_is_a_config_error(tls_files, tmp_path):
    cert, key = tls_files
    for given, missing in ((["--tls-cert", str(cert)], "tls_key"), (["--tls-key", str(key)], "tls_cert")):
        r = keyhole_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"), *given, timeout=30)
        assert r.returncode != 0
        assert f"`{missing}`" in " ".join(r.stderr.split()), r.stderr
        assert not (tmp_path / "d").exists()
    # A certificate file that is not one: named, with the fix, before anything is created.
    r = keyhole_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                    "--tls-cert", str(key), "--tls-key", str(key), timeout=30)
    assert r.returncode != 0
    said = " ".join(r.stderr.split())  # the report is wrapped to the terminal width
    assert "tls_cert" in said and "BEGIN CERTIFICATE" in said, r.stderr
    assert not (tmp_path / "d").exists()


def test_readme_https_block_runs(fresh_server_factory, tmp_path):
    """The README's "Serving HTTPS" block as written: its certificate commands, a gateway started
    with the `keyhole serve` line's files, then its client commands against that gateway."""
    from test_readme import DOC_ENDPOINT, README, block_commands

    text = README.read_text(encoding="utf-8")
    marker = "<!-- https -->"
    commands = [c.replace(DOC_ENDPOINT.replace("http://", "https://"), "{endpoint}")
                for c in block_commands(text, marker)]
    first_client = next(i for i, c in enumerate(commands) if "{endpoint}" in c)
    setup, clients = commands[:first_client], commands[first_client:]
    assert setup and clients, commands
    block = text.split(marker, 1)[1].split("```", 2)[1]
    serve = " ".join(block.replace("\\\n", " ").split("keyhole serve", 1)[1].splitlines()[0].split())
    args = serve.split()
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), PATH=f"{Path(aws_bin()).parent}{os.pathsep}{env.get('PATH', '')}")

    def run(lines: list[str]) -> None:
        script = "set -euxo pipefail\n" + "\n".join(lines) + "\n"
        cp = subprocess.run(["bash", "-c", script], env=env, cwd=work, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
        assert cp.returncode == 0, f"script:\n{script}\nstdout: {cp.stdout[-3000:]}\nstderr: {cp.stderr[-3000:]}"

    run(setup)
    extra = [str(work / a) if a.endswith(".pem") else a for a in args]
    assert "--tls-cert" in extra and "--tls-key" in extra, serve
    kp = fresh_server_factory(extra_args=extra)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(kp.creds_path)
    run([c.replace("{endpoint}", kp.endpoint) for c in clients])
    ak, sk = kp.credentials()
    assert "secure-bucket" in [b["Name"] for b in make_client(kp.endpoint, ak, sk, verify=str(work / "cert.pem"))
                               .list_buckets()["Buckets"]]
