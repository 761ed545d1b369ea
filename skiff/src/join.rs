//! `skiff join`: kubeadm's join, the TLS bootstrap a node makes with a bootstrap token.
//!
//! 1. Read `kube-public/cluster-info` anonymously, without trusting the server yet, and
//!    pin the CA it names by the SHA-256 of its public key (`--ca-cert-hash`).
//! 2. With the token, over TLS verified by that CA, ask for a client certificate
//!    (`CN=system:node:<name>, O=system:nodes`) with a CertificateSigningRequest.
//! 3. Wait until the cluster approves and issues it; write `node.kubeconfig`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// What a join needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// `https://host:port` of the API server.
    pub server: String,
    pub token: String,
    /// `sha256:<hex>` hashes of acceptable CAs' public keys.
    pub ca_cert_hashes: Vec<String>,
    /// Trust whatever CA cluster-info names (kubeadm's
    /// `--discovery-token-unsafe-skip-ca-verification`).
    pub unsafe_skip_ca_verification: bool,
    pub node_name: String,
    /// Where `node.kubeconfig` is written.
    pub data_dir: PathBuf,
    /// How long to wait for the certificate.
    pub timeout: Duration,
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo of the first certificate in `ca_pem`, as
/// kubeadm pins a CA.
pub fn ca_cert_hash(ca_pem: &str) -> anyhow::Result<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("CA certificate PEM: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents)
        .map_err(|e| anyhow::anyhow!("CA certificate: {e}"))?;
    let digest = sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// The server URL and CA PEM of a kubeconfig's first cluster.
pub fn kubeconfig_cluster(kubeconfig: &str) -> anyhow::Result<(String, String)> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(kubeconfig).context("parsing the kubeconfig")?;
    let cluster = doc
        .get("clusters")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("cluster"))
        .context("the kubeconfig names no cluster")?;
    let server = cluster
        .get("server")
        .and_then(|s| s.as_str())
        .context("the kubeconfig's cluster has no server")?;
    let ca_b64 = cluster
        .get("certificate-authority-data")
        .and_then(|s| s.as_str())
        .context("the kubeconfig's cluster has no certificate-authority-data")?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca_b64.trim())
        .context("certificate-authority-data is not base64")?;
    let ca = String::from_utf8(ca).context("certificate-authority-data is not PEM text")?;
    Ok((server.to_string(), ca))
}

fn normalize_hash(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    if h.contains(':') {
        h
    } else {
        format!("sha256:{h}")
    }
}

/// Reads cluster-info without verifying the server, and returns the CA it names once its
/// hash is one of `hashes` (or `skip` says not to check).
pub async fn discover_ca(server: &str, hashes: &[String], skip: bool) -> anyhow::Result<String> {
    if hashes.is_empty() && !skip {
        bail!(
            "refusing to trust an unpinned CA: give --ca-cert-hash sha256:<hex> (printed by `skiff token create`), or --discovery-token-unsafe-skip-ca-verification"
        );
    }
    // The CA is not known yet: any certificate will do here, the hash check below is what
    // makes the answer trustworthy.
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the discovery client")?;
    let url = format!("{server}{CLUSTER_INFO}");
    let resp = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("reading cluster-info from {url}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.context("decoding cluster-info")?;
    if !status.is_success() {
        bail!(
            "reading cluster-info from {url}: {status}: {}",
            body.get("message").and_then(Value::as_str).unwrap_or("")
        );
    }
    let kubeconfig = body
        .pointer("/data/kubeconfig")
        .and_then(Value::as_str)
        .context("cluster-info has no kubeconfig")?;
    let (_, ca) = kubeconfig_cluster(kubeconfig).context("cluster-info")?;
    let actual = ca_cert_hash(&ca)?;
    if !skip && !hashes.iter().any(|h| normalize_hash(h) == actual) {
        bail!(
            "the cluster CA's public key hash is {actual}, which matches no --ca-cert-hash: refusing to trust this server"
        );
    }
    Ok(ca)
}

/// A new private key and a certificate request for node `name`. Returns (CSR PEM, key PEM).
pub fn node_request(name: &str) -> anyhow::Result<(String, String)> {
    let key = rcgen::KeyPair::generate().context("generating the node's key")?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate request")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{name}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    let csr = params
        .serialize_request(&key)
        .context("signing the certificate request")?
        .pem()
        .context("encoding the certificate request")?;
    Ok((csr, key.serialize_pem()))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..10)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The kubeconfig a node uses: the cluster, its CA, and its own client certificate.
pub fn node_kubeconfig(server: &str, ca_pem: &str, user: &str, cert: &str, key: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {user}@skiff\n  context:\n    cluster: skiff\n    user: {user}\ncurrent-context: {user}@skiff\npreferences: {{}}\n",
        b64(ca_pem),
        b64(cert),
        b64(key),
    )
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// When the client certificate in the kubeconfig at `path` stops being valid; `None` when
/// there is no such file or it holds no certificate that parses.
pub fn kubeconfig_cert_expiry(path: &Path) -> Option<jiff::Timestamp> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let b64 = doc
        .get("users")?
        .get(0)?
        .get("user")?
        .get("client-certificate-data")?
        .as_str()?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&p.contents).ok()?;
    jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).ok()
}

/// Runs the TLS bootstrap; returns the path of the node kubeconfig it wrote.
pub async fn bootstrap(opts: &JoinOptions) -> anyhow::Result<PathBuf> {
    let server = opts.server.trim_end_matches('/').to_string();
    let ca = discover_ca(
        &server,
        &opts.ca_cert_hashes,
        opts.unsafe_skip_ca_verification,
    )
    .await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", opts.token.trim())
            .parse()
            .context("the token is not a valid header value")?,
    );
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(ca.as_bytes()).context("the cluster CA")?,
        )
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the bootstrap client")?;
    let (csr_pem, key_pem) = node_request(&opts.node_name)?;
    let name = format!("node-csr-{}", random_suffix());
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(csr_pem.as_bytes()),
            "signerName": KUBELET_CLIENT_SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    });
    let resp = http
        .post(format!("{server}{CSRS}"))
        .json(&body)
        .send()
        .await
        .context("creating the certificate signing request")?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(text);
        bail!("creating the certificate signing request: {status}: {message}");
    }
    tracing::info!(csr = %name, "certificate signing request created; waiting for approval");
    let deadline = Instant::now() + opts.timeout;
    let cert = loop {
        let resp = http
            .get(format!("{server}{CSRS}/{name}"))
            .send()
            .await
            .context("reading the certificate signing request")?;
        let status = resp.status();
        let csr: Value = resp
            .json()
            .await
            .context("decoding the certificate signing request")?;
        if !status.is_success() {
            bail!(
                "reading certificate signing request {name}: {status}: {}",
                csr.get("message").and_then(Value::as_str).unwrap_or("")
            );
        }
        let conditions = csr
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in &conditions {
            let t = c.get("type").and_then(Value::as_str).unwrap_or("");
            if t == "Denied" || t == "Failed" {
                bail!(
                    "certificate signing request {name} was {}: {}",
                    t.to_ascii_lowercase(),
                    c.get("message").and_then(Value::as_str).unwrap_or("")
                );
            }
        }
        if let Some(b64) = csr
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .context("status.certificate is not base64")?;
            break String::from_utf8(pem).context("status.certificate is not PEM text")?;
        }
        if Instant::now() >= deadline {
            bail!(
                "certificate signing request {name} was not issued within {:?}; approve it with `kubectl certificate approve {name}`",
                opts.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let path = opts.data_dir.join("node.kubeconfig");
    let user = format!("system:node:{}", opts.node_name);
    write_private(
        &path,
        node_kubeconfig(&server, &ca, &user, &cert, &key_pem).as_bytes(),
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn hash_is_of_the_public_key_and_kubeconfigs_round_trip() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        use rcgen::PublicKeyData;
        let expected: String = sha2::Sha256::digest(key.subject_public_key_info())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(ca_cert_hash(&cert).unwrap(), format!("sha256:{expected}"));
        let kc = node_kubeconfig("https://10.0.0.1:6443", &cert, "system:node:n", "C", "K");
        let (server, ca) = kubeconfig_cluster(&kc).unwrap();
        assert_eq!(server, "https://10.0.0.1:6443");
        assert_eq!(ca, cert);
        assert_eq!(normalize_hash("ABC"), "sha256:abc");
    }
}
