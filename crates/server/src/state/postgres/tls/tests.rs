use super::*;

fn options(url: &str) -> TlsOptions {
    parse(url).unwrap().1
}

fn error(url: &str) -> String {
    parse(url).unwrap_err().to_string()
}

#[test]
fn the_default_is_libpqs_prefer_without_a_certificate_check() {
    let (config, tls) = parse("postgres://keyhole@10.0.0.5:5432/keyhole").unwrap();
    assert_eq!(tls.mode, SslMode::Prefer);
    assert_eq!(tls.roots, Roots::None);
    assert_eq!(tls.check(), Check::Nothing);
    assert_eq!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Prefer
    );
    assert_eq!(config.get_dbname(), Some("keyhole"));
}

#[test]
fn each_sslmode_maps_to_what_it_checks() {
    let base = "postgres://u@db.internal:5432/k?";
    for (query, mode, check, wire) in [
        (
            "sslmode=disable",
            SslMode::Disable,
            Check::Nothing,
            tokio_postgres::config::SslMode::Disable,
        ),
        (
            "sslmode=prefer",
            SslMode::Prefer,
            Check::Nothing,
            tokio_postgres::config::SslMode::Prefer,
        ),
        (
            "sslmode=require",
            SslMode::Require,
            Check::Nothing,
            tokio_postgres::config::SslMode::Require,
        ),
        // libpq: a root file makes require (and prefer) check the chain, as verify-ca.
        (
            "sslmode=require&sslrootcert=/etc/ca.pem",
            SslMode::Require,
            Check::Chain,
            tokio_postgres::config::SslMode::Require,
        ),
        (
            "sslrootcert=/etc/ca.pem",
            SslMode::Prefer,
            Check::Chain,
            tokio_postgres::config::SslMode::Prefer,
        ),
        (
            "sslmode=verify-ca&sslrootcert=/etc/ca.pem",
            SslMode::VerifyCa,
            Check::Chain,
            tokio_postgres::config::SslMode::Require,
        ),
        (
            "sslmode=verify-full&sslrootcert=/etc/ca.pem",
            SslMode::VerifyFull,
            Check::ChainAndName,
            tokio_postgres::config::SslMode::Require,
        ),
        // sslrootcert=system makes verify-full the default, as in libpq.
        (
            "sslrootcert=system",
            SslMode::VerifyFull,
            Check::ChainAndName,
            tokio_postgres::config::SslMode::Require,
        ),
    ] {
        let (config, tls) = parse(&format!("{base}{query}")).unwrap();
        assert_eq!((tls.mode, tls.check()), (mode, check), "{query}");
        assert_eq!(config.get_ssl_mode(), wire, "{query}");
    }
}

#[test]
fn other_parameters_reach_tokio_postgres_and_values_are_percent_decoded() {
    let (config, tls) = parse(
        "postgresql://u@h:5433/k?application_name=node-a&sslrootcert=%2Fetc%2Fmy%20ca.pem&sslmode=verify%2Dfull&connect_timeout=3",
    )
    .unwrap();
    assert_eq!(tls.roots, Roots::File(PathBuf::from("/etc/my ca.pem")));
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert_eq!(config.get_application_name(), Some("node-a"));
    assert_eq!(
        config.get_connect_timeout(),
        Some(&std::time::Duration::from_secs(3))
    );
    assert_eq!(config.get_ports(), &[5433]);
}

#[test]
fn unusable_settings_are_refused_naming_the_fix() {
    let e = error("postgres://u@h/k?sslmode=verify-full");
    assert!(
        e.contains("sslmode=verify-full needs sslrootcert=FILE"),
        "{e}"
    );
    let e = error("postgres://u@h/k?sslmode=verify-ca");
    assert!(e.contains("sslmode=verify-ca needs sslrootcert"), "{e}");
    let e = error("postgres://u@h/k?sslmode=allow");
    assert!(
        e.contains("sslmode=allow") && e.contains("use prefer"),
        "{e}"
    );
    let e = error("postgres://u@h/k?sslmode=strict");
    assert!(e.contains("`strict`") && e.contains("verify-full"), "{e}");
    let e = error("postgres://u@h/k?sslmode=require&sslrootcert=system");
    assert!(
        e.contains("sslrootcert=system needs sslmode=verify-full"),
        "{e}"
    );
    let e = error("postgres://u@h/k?sslcert=/c.pem&sslkey=/k.pem");
    assert!(e.contains("`sslcert` is not supported"), "{e}");
    let e = error("postgres://u@h/k?sslmode=require&sslmode=disable");
    assert!(e.contains("`sslmode` is given twice"), "{e}");
    let e = error("postgres://u@h/k?nosuch=1");
    assert!(e.contains("unknown option `nosuch`"), "{e}");
}

#[test]
fn a_password_never_appears_in_an_error() {
    for url in [
        "postgres://u:s3cr3t-pw@h/k?sslmode=bogus",
        "postgres://u:s3cr3t-pw@h:notaport/k",
        "postgres://u@h/k?password=s3cr3t-pw&sslmode=verify-full",
        "postgres://u@h/k?password=s3cr3t-pw&port=x",
        "postgres://u:s3cr3t-pw@h/k?sslrootcert=/nonexistent/ca.pem",
    ] {
        let e = match parse(url) {
            Err(e) => e.to_string(),
            Ok((_, tls)) => Connector::new(&tls).unwrap_err(),
        };
        assert!(!e.contains("s3cr3t"), "{url}: {e}");
    }
}

#[test]
fn a_missing_or_empty_root_file_is_named() {
    let e = Connector::new(&options(
        "postgres://u@h/k?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .unwrap_err();
    assert!(
        e.contains("sslrootcert") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = Connector::new(&options(&format!(
        "postgres://u@h/k?sslmode=verify-ca&sslrootcert={}",
        empty.display()
    )))
    .unwrap_err();
    assert!(e.contains("holds no certificate"), "{e}");
}

/// A certificate for `names`, its own issuer (a trust anchor for itself), as PEM files.
fn certificate(dir: &Path, tag: &str, names: &[&str]) -> (PathBuf, Arc<rustls::ServerConfig>) {
    let ck = rcgen::generate_simple_self_signed(
        names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap();
    let cert = dir.join(format!("{tag}-cert.pem"));
    let key = dir.join(format!("{tag}-key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (
        cert.clone(),
        crate::tls::server_config(&cert, &key).unwrap(),
    )
}

/// A handshake over an in-memory pipe: the client side's outcome.
async fn handshake(
    connector: &Connector,
    host: &str,
    server: Arc<rustls::ServerConfig>,
) -> Result<(), String> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let serving = tokio::spawn(async move { acceptor.accept(server_io).await.map(|_| ()) });
    let mut make = connector.clone();
    let connect = MakeTlsConnect::<tokio::io::DuplexStream>::make_tls_connect(&mut make, host)
        .map_err(|e| e.to_string())?;
    let out = TlsConnect::connect(connect, client_io)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    serving.abort();
    out
}

#[tokio::test]
async fn each_mode_checks_the_certificate_as_libpq_does() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, server) = certificate(dir.path(), "db", &["127.0.0.1", "db.internal"]);
    let (other_ca, _) = certificate(dir.path(), "other", &["127.0.0.1"]);
    let connector =
        |query: String| Connector::new(&options(&format!("postgres://u@h/k?{query}"))).unwrap();
    let ca = ca.display();
    let other_ca = other_ca.display();

    // verify-full: the right CA and a name (or address) in the certificate.
    let full = connector(format!("sslmode=verify-full&sslrootcert={ca}"));
    handshake(&full, "127.0.0.1", server.clone()).await.unwrap();
    handshake(&full, "db.internal", server.clone())
        .await
        .unwrap();
    let e = handshake(&full, "other.internal", server.clone())
        .await
        .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    // verify-ca: the chain only.
    let ca_only = connector(format!("sslmode=verify-ca&sslrootcert={ca}"));
    handshake(&ca_only, "other.internal", server.clone())
        .await
        .unwrap();
    // Another CA fails both, and require with a root file (libpq's verify-ca).
    for query in [
        format!("sslmode=verify-full&sslrootcert={other_ca}"),
        format!("sslmode=verify-ca&sslrootcert={other_ca}"),
        format!("sslmode=require&sslrootcert={other_ca}"),
    ] {
        let e = handshake(&connector(query.clone()), "127.0.0.1", server.clone())
            .await
            .unwrap_err();
        // (rcgen's self-signed certificates share one subject name, so the other root is found
        // as the issuer and its signature does not match.)
        assert!(e.contains("invalid peer certificate"), "{query}: {e}");
    }
    // require without a root file: encrypted, any certificate.
    handshake(
        &connector("sslmode=require".into()),
        "other.internal",
        server.clone(),
    )
    .await
    .unwrap();
}

#[test]
fn describe_says_what_is_checked() {
    assert_eq!(
        options("postgres://u@h/k").describe(),
        "sslmode=prefer: TLS if the server offers it, certificate not verified"
    );
    assert_eq!(
        options("postgres://u@h/k?sslmode=verify-full&sslrootcert=/ca.pem").describe(),
        "sslmode=verify-full: TLS, certificate and host name verified"
    );
    assert_eq!(
        options("postgres://u@h/k?sslmode=disable").describe(),
        "sslmode=disable: no TLS"
    );
}
