//! The built `blindfold` binary as real processes: a model owner's `split`, two
//! `serve` processes over loopback TCP and a `query` client, compared with the
//! plaintext `run`; and the servers' refusal of a wrong or broken share file.

use assert_cmd::Command;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_blindfold"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "blindfold-cli-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Child processes killed when the guard goes out of scope (also on panic).
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cmd() -> Command {
    let mut c = Command::new(bin());
    c.env("BLINDFOLD_HOME", repo());
    c.timeout(Duration::from_secs(120));
    c
}

/// Run the binary with `args`; require success; return stdout.
fn ok(args: &[&str]) -> String {
    let out = cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "blindfold {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run the binary with `args`; require failure; return stderr.
fn fails(args: &[&str]) -> String {
    let out = cmd().args(args).output().unwrap();
    assert!(
        !out.status.success(),
        "blindfold {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn json_label(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in output:\n{stdout}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["label"]
        .as_u64()
        .unwrap_or_else(|| panic!("no label in {line}")) as usize
}

/// Start a server process; `tls`: the certificate directory, or `None` for
/// `--insecure-plaintext`.
fn serve(
    dir: &Path,
    party: u8,
    listen: &str,
    peer: Option<&str>,
    tls: Option<&Path>,
) -> std::io::Result<(String, Child)> {
    let mut c = std::process::Command::new(bin());
    c.env("BLINDFOLD_HOME", repo())
        .arg("serve")
        .args(["--party", &party.to_string()])
        .arg("--share")
        .arg(dir.join(format!("party{party}.share")))
        .args(["--listen", listen, "--pool", "2"]);
    if let Some(p) = peer {
        c.args(["--peer", p]);
    }
    match tls {
        Some(d) => c.arg("--tls-dir").arg(d),
        None => c.arg("--insecure-plaintext"),
    };
    let log = std::fs::File::create(dir.join(format!("serve{party}.log")))?;
    c.stdout(Stdio::null()).stderr(log);
    Ok((format!("P{party}"), c.spawn()?))
}

#[cfg(unix)]
fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn split_serve_query_as_three_processes_over_tls() {
    let tmp = TempDir::new("procs");
    let dir = tmp.0.as_path();
    let d = dir.to_str().unwrap();
    ok(&["split", "minionn", "--out", d]);
    assert!(dir.join("party0.share").exists() && dir.join("party1.share").exists());
    let pki = dir.join("pki");
    ok(&["certs", "--out", pki.to_str().unwrap()]);
    #[cfg(unix)]
    for f in ["party0.share", "party1.share"] {
        assert_eq!(mode_of(&dir.join(f)), 0o600, "{f}");
    }
    #[cfg(unix)]
    for f in [
        "ca.pem",
        "p0.pem",
        "p0.key",
        "p1.pem",
        "p1.key",
        "client.pem",
        "client.key",
    ] {
        assert_eq!(mode_of(&pki.join(f)), 0o600, "{f}");
    }
    // Certificates and shares are never overwritten.
    let err = fails(&["certs", "--out", pki.to_str().unwrap()]);
    assert!(err.contains("never overwritten"), "{err}");
    let err = fails(&["split", "minionn", "--out", d]);
    assert!(err.contains("never overwritten"), "{err}");
    let digits = dir.join("digits");
    ok(&["digits", "--out", digits.to_str().unwrap(), "--count", "2"]);

    let a0 = format!("127.0.0.1:{}", free_port());
    let a1 = format!("127.0.0.1:{}", free_port());
    let mut kids = Children(Vec::new());
    kids.0.push(serve(dir, 0, &a0, None, Some(&pki)).unwrap());
    kids.0
        .push(serve(dir, 1, &a1, Some(&a0), Some(&pki)).unwrap());
    let t = pki.to_str().unwrap();

    let servers = format!("{a0},{a1}");
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&digits)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 2, "digits wrote {pngs:?}");
    // digit1 first (the brief's example), then digit0: two clients in turn.
    pngs.reverse();
    for png in &pngs {
        let p = png.to_str().unwrap();
        let secure = ok(&["query", "--servers", &servers, "--tls-dir", t, p, "--json"]);
        let plain = ok(&["run", "minionn", p, "--json"]);
        let (ls, lp) = (json_label(&secure), json_label(&plain));
        assert_eq!(ls, lp, "{p}: secure label {ls}, plaintext {lp}");
        // The bundled digits are classified correctly by MiniONN.
        let name = png.file_stem().unwrap().to_string_lossy().into_owned();
        let truth: usize = name.rsplit("label").next().unwrap().parse().unwrap();
        assert_eq!(ls, truth, "{p}");
        // The human-readable form prints the label too.
        let text = ok(&["query", "--servers", &servers, "--tls-dir", t, p]);
        assert!(text.contains(&format!("label {ls}")), "{text}");
    }
    // The servers in the wrong order: a clear refusal, before any share is sent.
    let p = pngs[0].to_str().unwrap();
    let err = fails(&[
        "query",
        "--servers",
        &format!("{a1},{a0}"),
        "--tls-dir",
        t,
        p,
    ]);
    assert!(
        err.contains("presented the certificate of p1"),
        "unclear message: {err}"
    );
    // A client that would speak plaintext to TLS servers gets nowhere, and
    // one that chose neither is told how to choose.
    fails(&[
        "query",
        "--servers",
        &servers,
        "--insecure-plaintext",
        "--timeout",
        "3",
        p,
    ]);
    let err = fails(&["query", "--servers", &servers, p]);
    assert!(err.contains("--tls-dir"), "{err}");
    // Label only over the same servers agrees with the full answer.
    let secure = ok(&[
        "query",
        "--servers",
        &servers,
        "--tls-dir",
        t,
        p,
        "--json",
        "--label-only",
    ]);
    let plain = ok(&["run", "minionn", p, "--json"]);
    assert_eq!(json_label(&secure), json_label(&plain), "label only");
    for (name, c) in kids.0.iter_mut() {
        assert!(
            c.try_wait().unwrap().is_none(),
            "server {name} exited during the test; log: {}",
            std::fs::read_to_string(dir.join(format!("serve{}.log", &name[1..])))
                .unwrap_or_default()
        );
    }
}

#[test]
fn insecure_plaintext_is_an_explicit_choice() {
    let tmp = TempDir::new("plain");
    let dir = tmp.0.as_path();
    ok(&["split", "ppml_a", "--out", dir.to_str().unwrap()]);
    // Neither --tls-dir nor --insecure-plaintext: refused, saying how.
    let err = fails(&[
        "serve",
        "--party",
        "0",
        "--share",
        dir.join("party0.share").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains("--tls-dir") && err.contains("--insecure-plaintext"),
        "{err}"
    );
    let digits = dir.join("digits");
    ok(&["digits", "--out", digits.to_str().unwrap(), "--count", "1"]);
    let png = std::fs::read_dir(&digits)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    let a0 = format!("127.0.0.1:{}", free_port());
    let a1 = format!("127.0.0.1:{}", free_port());
    let mut kids = Children(Vec::new());
    kids.0.push(serve(dir, 0, &a0, None, None).unwrap());
    kids.0.push(serve(dir, 1, &a1, Some(&a0), None).unwrap());
    let servers = format!("{a0},{a1}");
    let p = png.to_str().unwrap();
    let out = std::process::Command::new(bin())
        .env("BLINDFOLD_HOME", repo())
        .args([
            "query",
            "--servers",
            &servers,
            "--insecure-plaintext",
            p,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WARNING"),
        "no warning for plaintext"
    );
    let secure = String::from_utf8_lossy(&out.stdout).into_owned();
    let plain = ok(&["run", "ppml_a", p, "--json"]);
    assert_eq!(json_label(&secure), json_label(&plain));
    // The servers are in the wrong order: refused before any share is sent.
    let err = fails(&[
        "query",
        "--servers",
        &format!("{a1},{a0}"),
        "--insecure-plaintext",
        p,
    ]);
    assert!(err.contains("the first server must be party 0"), "{err}");
}

#[test]
fn serve_refuses_a_wrong_or_broken_share_file() {
    let tmp = TempDir::new("shares");
    let dir = tmp.0.as_path();
    ok(&["split", "ppml_a", "--out", dir.to_str().unwrap()]);
    let s0 = dir.join("party0.share");
    let s1 = dir.join("party1.share");

    // party 0's share given to server 1, and the other way round.
    let err = fails(&[
        "serve",
        "--party",
        "1",
        "--share",
        s0.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--peer",
        "127.0.0.1:9",
        "--insecure-plaintext",
    ]);
    assert!(
        err.contains("party 0's share") && err.contains("--party 1"),
        "unclear message: {err}"
    );
    let err = fails(&[
        "serve",
        "--party",
        "0",
        "--share",
        s1.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains("party 1's share") && err.contains("--party 0"),
        "unclear message: {err}"
    );

    // A truncated share file, a model file instead of a share file, no file.
    let bytes = std::fs::read(&s0).unwrap();
    let cut = dir.join("cut.share");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&[
        "serve",
        "--party",
        "0",
        "--share",
        cut.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains("cut.share") && err.contains("share file"),
        "{err}"
    );
    let onnx = repo().join("models/ppml_a.onnx");
    let err = fails(&[
        "serve",
        "--party",
        "0",
        "--share",
        onnx.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(err.contains("not a blindfold share file"), "{err}");
    let missing = dir.join("missing.share");
    let err = fails(&[
        "serve",
        "--party",
        "0",
        "--share",
        missing.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(err.contains("missing.share"), "{err}");

    // Party 1 without the address of party 0.
    let err = fails(&[
        "serve",
        "--party",
        "1",
        "--share",
        s1.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(err.contains("--peer"), "{err}");
    // A party that is neither 0 nor 1.
    let err = fails(&["serve", "--party", "2", "--share", s0.to_str().unwrap()]);
    assert!(err.contains("--party"), "{err}");
}

/// Client-server mode as two processes over TLS: `serve --mode client-server`
/// holding the model in clear, `query --mode client-server` with a pool
/// filled first (every input then pays only the online phase), label only,
/// and clear refusals for a client of the other mode.
#[test]
fn client_server_serve_and_query_as_two_processes_over_tls() {
    let tmp = TempDir::new("cs");
    let dir = tmp.0.as_path();
    let pki = dir.join("pki");
    ok(&["certs", "--out", pki.to_str().unwrap()]);
    let digits = dir.join("digits");
    ok(&["digits", "--out", digits.to_str().unwrap(), "--count", "2"]);
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&digits)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    pngs.sort();
    let addr = format!("127.0.0.1:{}", free_port());
    let t = pki.to_str().unwrap();
    let mut c = std::process::Command::new(bin());
    c.env("BLINDFOLD_HOME", repo())
        .args(["serve", "--mode", "client-server", "--model", "ppml_c"])
        .args(["--listen", &addr, "--pool", "4", "--tls-dir", t])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap());
    let mut kids = Children(vec![("server".into(), c.spawn().unwrap())]);
    let (p0, p1) = (pngs[0].to_str().unwrap(), pngs[1].to_str().unwrap());
    // Wait for the server to listen (the first query retries its connect).
    let out = ok(&[
        "query",
        "--mode",
        "client-server",
        "--server",
        &addr,
        "--tls-dir",
        t,
        "--preprocess",
        "2",
        p0,
        p1,
        "--json",
    ]);
    let answers: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{out}");
    for (a, p) in answers.iter().zip([p0, p1]) {
        assert_eq!(a["preprocessed_first"], false, "the pool was filled first");
        let plain = ok(&["run", "ppml_c", p, "--json"]);
        assert_eq!(
            a["label"].as_u64().unwrap() as usize,
            json_label(&plain),
            "{p}"
        );
    }
    // Without --preprocess the query says it preprocessed first.
    let text = ok(&[
        "query",
        "--mode",
        "client-server",
        "--server",
        &addr,
        "--tls-dir",
        t,
        p1,
    ]);
    assert!(text.contains("preprocessed first"), "{text}");
    let label = ok(&[
        "query",
        "--mode",
        "client-server",
        "--server",
        &addr,
        "--tls-dir",
        t,
        p1,
        "--json",
        "--label-only",
    ]);
    let plain = ok(&["run", "ppml_c", p1, "--json"]);
    assert_eq!(json_label(&label), json_label(&plain), "label only");
    // A two-server client is told this server runs the other mode.
    let err = fails(&[
        "query",
        "--servers",
        &format!("{addr},{addr}"),
        "--tls-dir",
        t,
        "--timeout",
        "5",
        p1,
    ]);
    assert!(!err.is_empty());
    // The server is still up.
    assert!(kids.0[0].1.try_wait().unwrap().is_none(), "server exited");
    let err = fails(&[
        "serve",
        "--mode",
        "client-server",
        "--listen",
        &addr,
        "--tls-dir",
        t,
    ]);
    assert!(err.contains("--model"), "{err}");
    drop(kids);
}
