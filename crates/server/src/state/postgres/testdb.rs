//! A private PostgreSQL cluster for the tests: `initdb` into a temporary directory, `postgres`
//! on a free loopback port, one fresh database per test. When the tests run as root the cluster
//! runs as the `postgres` user (or `nobody`), since PostgreSQL refuses root. A watchdog shell
//! stops the server (by its PID) and removes the directory once the test process is gone.
//!
//! PostgreSQL's server binaries must be installed (`KEYHOLE_PG_BINDIR`, Debian's
//! `/usr/lib/postgresql/*/bin`, or `initdb` on the PATH): `scripts/test.sh` installs Debian's
//! `postgresql` when they are missing. Without them these tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The one cluster of this test process.
struct Cluster {
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// Where PostgreSQL's server binaries are.
pub fn bindir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KEYHOLE_PG_BINDIR") {
        return Some(PathBuf::from(d));
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(d) = debian.pop() {
        return Some(d);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

fn command(c: &Cluster, program: &str) -> Command {
    let path = c.bin.join(program);
    match &c.run_as {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(path);
            cmd
        }
        None => Command::new(path),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start() -> Result<Cluster, String> {
    let bin = bindir().ok_or(
        "PostgreSQL's server binaries (initdb, postgres) are not installed: install Debian's `postgresql` package (scripts/test.sh does) or set KEYHOLE_PG_BINDIR",
    )?;
    let root = rustix::process::geteuid().is_root();
    let run_as = if !root {
        None
    } else if Command::new("id")
        .arg("postgres")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        Some("postgres".to_owned())
    } else {
        Some("nobody".to_owned())
    };
    let dir = tempfile::Builder::new()
        .prefix("keyhole-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if let Some(user) = &run_as {
        let id = |flag: &str| -> Result<u32, String> {
            let o = Command::new("id")
                .args([flag, user])
                .output()
                .map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .map_err(|e| format!("id {flag} {user}: {e}"))
        };
        std::os::unix::fs::chown(&dir, Some(id("-u")?), Some(id("-g")?))
            .map_err(|e| e.to_string())?;
    }
    let port = free_port()?;
    let c = Cluster { bin, port, run_as };
    let data = dir.join("data");
    run(
        command(&c, "initdb").args(["-D"]).arg(&data).args([
            "-U",
            "keyhole",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]),
        "initdb",
    )?;
    // The server, and a watchdog that stops it (by PID) and removes the directory once this
    // test process is gone.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >{dir}/log 2>&1 & pg=$!; while [ -d /proc/{me} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}",
        postgres = c.bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        me = std::process::id(),
    );
    let mut sh = match &c.run_as {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--", "sh", "-c", &script]);
            cmd
        }
        None => {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &script]);
            cmd
        }
    };
    sh.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready = command(&c, "pg_isready")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "keyhole"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            return Ok(c);
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start within 30 s: {log}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A URL of a new, empty database in the test cluster (started on first use).
pub fn database() -> String {
    let c = match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("no PostgreSQL for the tests: {e}"),
    };
    let name = format!("t{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
    if let Err(e) = run(
        command(c, "createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "keyhole",
            &name,
        ]),
        "createdb",
    ) {
        panic!("{e}");
    }
    format!("postgres://keyhole@127.0.0.1:{}/{name}", c.port)
}
