//! A real OpenID provider for the SSO tests: `oidc-provider` from npm (tests/oidc), run with
//! Node on a loopback port, and the authorization-code flow with PKCE driven over HTTP as
//! the device app would drive it.

use crate::helpers::free_port;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REDIRECT: &str = "http://127.0.0.1/callback";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the provider from the lock file once, whichever test process gets here first
/// (nextest runs tests as separate processes, so the guard is a file lock).
fn ensure_installed() {
    let dir = harness_dir();
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return;
    }
    let lock = std::fs::File::create(std::env::temp_dir().join("fieldsync-oidc-npm.lock"))
        .expect("a lock file in the temp dir");
    lock.lock().expect("the npm install lock");
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node 20+) is needed for the SSO tests");
        assert!(status.success(), "npm ci in tests/oidc failed");
    }
}

/// One provider process; killed when dropped.
pub struct Idp {
    pub port: u16,
    pub issuer: String,
    keys: tempfile::TempDir,
    child: Child,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(port: u16, key_dir: &Path, keys: &str, console: Option<&str>) -> Child {
    let mut cmd = Command::new("node");
    cmd.arg(harness_dir().join("provider.mjs"))
        .env("PORT", port.to_string())
        .env("KEY_DIR", key_dir)
        .env("KEYS", keys);
    if let Some(redirect) = console {
        cmd.env("CONSOLE_REDIRECT", redirect);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is needed for the SSO tests")
}

impl Idp {
    /// Starts a provider publishing and signing with `keys` (comma-separated key ids).
    pub async fn start(keys: &str) -> Idp {
        Self::start_with(keys, None).await
    }

    /// A provider that also knows the console's confidential client, redirecting to
    /// `console_redirect`.
    pub async fn start_with(keys: &str, console_redirect: Option<&str>) -> Idp {
        ensure_installed();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let idp = Idp {
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            child: launch(port, dir.path(), keys, console_redirect),
            keys: dir,
        };
        idp.wait_up().await;
        idp
    }

    /// Restarts on the same port with another key set (the old keys' files are kept, so a
    /// key id names the same key across restarts).
    pub async fn rotate(&mut self, keys: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = launch(self.port, self.keys.path(), keys, None);
        self.wait_up().await;
    }

    async fn wait_up(&self) {
        let http = reqwest::Client::new();
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the OpenID provider did not come up on {}", self.issuer);
    }

    /// The provider's published keys.
    pub async fn jwks(&self) -> serde_json::Value {
        reqwest::get(format!("{}/jwks", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Signs in `login` at the provider as app `client` (authorization code with PKCE and
    /// `state`), and answers the ID token the token endpoint gives back.
    pub async fn id_token(&self, client: &str, login: &str, nonce: Option<&str>) -> String {
        self.tokens(client, login, nonce).await.0
    }

    /// Revokes a token at the provider (RFC 7009), as an administrator removing access would.
    pub async fn revoke(&self, client: &str, token: &str) {
        let resp = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer))
            .form(&[("token", token), ("client_id", client)])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "revocation: {}", resp.status());
    }

    /// [`Idp::id_token`], with the access token issued beside it: (ID token, access token).
    pub async fn tokens(&self, client: &str, login: &str, nonce: Option<&str>) -> (String, String) {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let verifier = b64(&rand::random::<[u8; 32]>());
        let challenge = b64(&Sha256::digest(verifier.as_bytes()));
        let state = b64(&rand::random::<[u8; 16]>());
        let mut query = vec![
            ("client_id", client),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", state.as_str()),
        ];
        if let Some(n) = nonce {
            query.push(("nonce", n));
        }
        let auth =
            reqwest::Url::parse_with_params(&format!("{}/auth", self.issuer), &query).unwrap();
        let mut next = self.location(http.get(auth).send().await.unwrap());
        // The login page, then back through /auth to the redirect with the code.
        let mut code = None;
        for _ in 0..6 {
            let url = reqwest::Url::parse(&next).unwrap();
            if url.as_str().starts_with(REDIRECT) {
                let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
                assert_eq!(q.get("state"), Some(&state), "state comes back unchanged");
                code = q.get("code").cloned();
                break;
            }
            let resp = if url.path().starts_with("/interaction/") {
                http.post(url)
                    .form(&[("prompt", "login"), ("login", login), ("password", "any")])
                    .send()
                    .await
                    .unwrap()
            } else {
                http.get(url).send().await.unwrap()
            };
            next = self.location(resp);
        }
        let code = code.expect("the provider redirected back with a code");
        let tokens: serde_json::Value = http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", client),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let get = |k: &str| {
            tokens[k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} in {tokens}"))
                .to_string()
        };
        (get("id_token"), get("access_token"))
    }

    fn location(&self, resp: reqwest::Response) -> String {
        assert!(
            resp.status().is_redirection(),
            "expected a redirect from the provider, got {}",
            resp.status()
        );
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        match loc.starts_with('/') {
            true => format!("{}{loc}", self.issuer),
            false => loc,
        }
    }
}

/// An RSA private key (PKCS#8 PEM) the provider never published, made by Node's crypto.
pub fn rogue_rsa_pem() -> String {
    let out = Command::new("node")
        .args([
            "-e",
            "const {generateKeyPairSync}=require('node:crypto');\
             process.stdout.write(generateKeyPairSync('rsa',{modulusLength:2048})\
             .privateKey.export({type:'pkcs8',format:'pem'}))",
        ])
        .output()
        .expect("node");
    String::from_utf8(out.stdout).unwrap()
}

/// A JWT's parts, decoded: header and payload as JSON.
pub fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    let dec = |s: &str| {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    (dec(p[0]), dec(p[1]), p[2].to_string())
}

/// Re-assembles a JWT from JSON header and payload and a signature part.
pub fn assemble(header: &serde_json::Value, payload: &serde_json::Value, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    )
}
