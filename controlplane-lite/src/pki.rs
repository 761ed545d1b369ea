//! The control plane's certificates and credentials.
//!
//! On first start a CA, a serving certificate, an admin client certificate and an admin
//! bearer token are created under `DIR/pki`; later starts load them. `DIR/admin.kubeconfig`
//! is (re)written on every start so it always names the address the server listens on.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{path}: no usable PEM data")]
    BadPem { path: PathBuf },
}

/// Everything the server needs to serve TLS and authenticate its admin.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_token: String,
    /// The client certificate the API server shows to agents (kube-apiserver's
    /// `--kubelet-client-certificate`).
    pub kubelet_client_cert_pem: String,
    pub kubelet_client_key_pem: String,
}

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
const SERVING_CERT: &str = "apiserver.crt";
const SERVING_KEY: &str = "apiserver.key";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";
const ADMIN_TOKEN: &str = "admin.token";
const KUBELET_CLIENT_CERT: &str = "apiserver-kubelet-client.crt";
const KUBELET_CLIENT_KEY: &str = "apiserver-kubelet-client.key";

/// The API server's identity towards agents, as kubeadm names it.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// The group that bypasses authorization, as in Kubernetes.
pub const MASTERS_GROUP: &str = "system:masters";
pub const ADMIN_USER: &str = "skiff-admin";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// Writes a file readable by root only, atomically (temp file + rename), so a crash never
/// leaves half a key behind.
fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io_err(path))
}

impl Pki {
    /// Loads the PKI from `data_dir/pki`, creating whatever is missing. `sans` are extra
    /// names and addresses for the serving certificate.
    pub fn load_or_create(data_dir: &Path, sans: &[String]) -> Result<Pki, PkiError> {
        let dir = data_dir.join("pki");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let ca_cert_path = dir.join(CA_CERT);
        let ca_key_path = dir.join(CA_KEY);
        if !ca_cert_path.exists() || !ca_key_path.exists() {
            let key = KeyPair::generate().map_err(gen_err("CA key"))?;
            let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("CA"))?;
            params
                .distinguished_name
                .push(DnType::CommonName, "skiff-ca");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = rcgen::date_time_ymd(2024, 1, 1);
            params.not_after = rcgen::date_time_ymd(2124, 1, 1);
            let cert = params.self_signed(&key).map_err(gen_err("CA"))?;
            write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
            write_private(&ca_cert_path, cert.pem().as_bytes())?;
        }
        let ca_pem = read(&ca_cert_path)?;
        let ca = CaSigner::load(&ca_pem, &read(&ca_key_path)?)?;

        let serving_cert_path = dir.join(SERVING_CERT);
        let serving_key_path = dir.join(SERVING_KEY);
        let wanted_sans = serving_sans(sans);
        let sans_path = dir.join("apiserver.sans");
        let old_sans = fs::read_to_string(&sans_path).unwrap_or_default();
        // Re-issue when the names change (a new --bind-address), so kubectl keeps verifying.
        if !serving_cert_path.exists() || old_sans != wanted_sans.join(",") {
            let (cert, key) = ca.issue("kube-apiserver", &[], &wanted_sans, true)?;
            write_private(&serving_key_path, key.as_bytes())?;
            write_private(&serving_cert_path, cert.as_bytes())?;
            write_private(&sans_path, wanted_sans.join(",").as_bytes())?;
        }
        let admin_cert_path = dir.join(ADMIN_CERT);
        if !admin_cert_path.exists() {
            let (cert, key) = ca.issue(ADMIN_USER, &[MASTERS_GROUP], &[], false)?;
            write_private(&dir.join(ADMIN_KEY), key.as_bytes())?;
            write_private(&admin_cert_path, cert.as_bytes())?;
        }
        // Data dirs made before the agents' API existed get theirs on their next start.
        let kubelet_cert_path = dir.join(KUBELET_CLIENT_CERT);
        let kubelet_key_path = dir.join(KUBELET_CLIENT_KEY);
        if !kubelet_cert_path.exists() || !kubelet_key_path.exists() {
            let (cert, key) = ca.issue(KUBELET_CLIENT_USER, &[MASTERS_GROUP], &[], false)?;
            write_private(&kubelet_key_path, key.as_bytes())?;
            write_private(&kubelet_cert_path, cert.as_bytes())?;
        }
        let token_path = dir.join(ADMIN_TOKEN);
        if !token_path.exists() {
            write_private(&token_path, random_token().as_bytes())?;
        }
        Ok(Pki {
            ca_pem,
            serving_cert_pem: read(&serving_cert_path)?,
            serving_key_pem: read(&serving_key_path)?,
            admin_token: read(&token_path)?.trim().to_string(),
            kubelet_client_cert_pem: read(&kubelet_cert_path)?,
            kubelet_client_key_pem: read(&kubelet_key_path)?,
            dir,
        })
    }

    /// Writes a kubeconfig that authenticates as the admin with its client certificate.
    pub fn write_admin_kubeconfig(&self, path: &Path, server: &str) -> Result<(), PkiError> {
        let cert = read(&self.dir.join(ADMIN_CERT))?;
        let key = read(&self.dir.join(ADMIN_KEY))?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let doc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {ADMIN_USER}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: skiff\npreferences: {{}}\n",
            b64(&self.ca_pem),
            b64(&cert),
            b64(&key),
        );
        write_private(path, doc.as_bytes())
    }
}

/// A CA loaded from disk that can issue certificates.
pub struct CaSigner {
    issuer: Issuer<'static, KeyPair>,
}

impl CaSigner {
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<CaSigner, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(gen_err("CA key (parse)"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(gen_err("CA (parse)"))?;
        Ok(CaSigner { issuer })
    }

    /// Issues a certificate for `common_name` in `groups` (the subject's O fields, which
    /// Kubernetes reads as group membership). Returns (cert PEM, key PEM).
    pub fn issue(
        &self,
        common_name: &str,
        groups: &[&str],
        sans: &[String],
        server: bool,
    ) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate().map_err(gen_err("leaf key"))?;
        let mut params = CertificateParams::new(sans.to_vec()).map_err(gen_err("leaf"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(gen_err("leaf"))?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn serving_sans(extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(host) = fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            sans.push(host.to_string());
        }
    }
    for s in extra {
        let unspecified = s.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
        if !unspecified && !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    sans
}

/// 32 random bytes, base64url: as strong as Kubernetes' bootstrap and service account tokens.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reloads_same_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Pki::load_or_create(dir.path(), &[]).expect("create");
        let b = Pki::load_or_create(dir.path(), &[]).expect("reload");
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_eq!(a.kubelet_client_cert_pem, b.kubelet_client_cert_pem);
        // A data dir from before the agents' API gets the kubelet-client pair.
        fs::remove_file(dir.path().join("pki").join(KUBELET_CLIENT_CERT)).expect("rm");
        let d = Pki::load_or_create(dir.path(), &[]).expect("reload without kubelet client");
        assert_ne!(a.kubelet_client_cert_pem, d.kubelet_client_cert_pem);
        assert!(dir.path().join("pki").join(KUBELET_CLIENT_CERT).exists());
        let c = Pki::load_or_create(dir.path(), &["10.1.2.3".into()]).expect("new san");
        assert_eq!(a.ca_pem, c.ca_pem);
        assert_ne!(a.serving_cert_pem, c.serving_cert_pem);
        let kc = dir.path().join("admin.kubeconfig");
        a.write_admin_kubeconfig(&kc, "https://127.0.0.1:6443")
            .expect("kubeconfig");
        let text = fs::read_to_string(kc).expect("read");
        assert!(text.contains("client-certificate-data"));
    }
}
