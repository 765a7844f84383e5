//! Bearer-token auth, the scheme Docker Hub and most public registries use:
//! a real Debian docker-registry configured with `auth: token`, and a small
//! token server in this test that checks basic credentials and issues
//! RS256 JWTs (signed by `openssl`) with the cert in their `x5c` header,
//! which the registry verifies against its `rootcertbundle`.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use support::*;

const SERVICE: &str = "isola-test-registry";
const ISSUER: &str = "isola-test-issuer";

/// The token server: answers `GET /token?service=..&scope=..` with a JWT
/// granting the scopes asked for, to [`USER`] with [`PASSWORD`] only.
struct TokenServer {
    port: u16,
}

impl TokenServer {
    fn start(key: PathBuf, cert_der_b64: String) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                serve_one(conn, &expected, &key, &cert_der_b64);
            }
        });
        TokenServer { port }
    }
}

fn serve_one(mut conn: TcpStream, expected_auth: &str, key: &Path, cert: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") && value.trim() == expected_auth {
                authorized = true;
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let (status, body) = if authorized {
        let scopes: Vec<String> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("scope="))
            .map(percent_decode)
            .collect();
        let token = jwt(key, cert, &scopes);
        (
            "200 OK",
            serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 })
                .to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"details":"bad credentials"}"#.to_string(),
        )
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A JWT granting `scopes` (`repository:<name>:<actions>`), signed RS256.
fn jwt(key: &Path, cert: &str, scopes: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter_map(|scope| {
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5c": [cert] });
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": USER, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 60, "iat": now - 60,
        "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let sig = openssl.wait_with_output().unwrap();
    assert!(sig.status.success(), "openssl dgst -sign failed");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.stdout))
}

/// A self-signed RSA key and cert; returns (key path, cert path, cert DER
/// in standard base64 as `x5c` wants it).
fn signing_cert(dir: &Path) -> (PathBuf, PathBuf, String) {
    let key = dir.join("token.key");
    let cert = dir.join("token.crt");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=isola-test-token"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl missing");
    assert!(out.status.success(), "openssl req: {out:?}");
    let pem = fs::read_to_string(&cert).unwrap();
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    (key, cert, der_b64)
}

#[test]
fn login_then_pull_from_token_auth_registry() {
    let reg = Registry::start_with_auth(|dir| {
        let (key, cert, der) = signing_cert(dir);
        let server = TokenServer::start(key, der);
        Some(format!(
            "  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            server.port,
            cert.display()
        ))
    });
    let (layout, manifest_digest) = busybox_layout();
    reg.push(
        layout.path(),
        "latest",
        "team/busybox:latest",
        Some((USER, PASSWORD)),
    );
    let root = engine_root();
    let name = format!("{}/team/busybox:latest", reg.host());

    let err = fails(isola(root.path(), &["pull", &name], &[], None));
    assert!(err.contains("denied by registry"), "{err}");

    let err = fails(isola(
        root.path(),
        &["login", "-u", USER, "--password-stdin", &reg.host()],
        &[],
        Some("wrong\n"),
    ));
    assert!(
        err.contains(&format!("login to {} failed", reg.host())),
        "{err}"
    );

    let out = ok(isola(
        root.path(),
        &["login", "-u", USER, "--password-stdin", &reg.host()],
        &[],
        Some(PASSWORD),
    ));
    assert_eq!(out, "Login Succeeded\n");
    let out = ok(isola(root.path(), &["pull", &name], &[], None));
    assert!(out.contains(&format!("Digest: {manifest_digest}")), "{out}");
    assert!(store_blobs(root.path()).contains(&manifest_digest));
}
