//! Cluster PKI: CA and node certificate generation (`rcgen`), and the mutual
//! TLS configuration of the QUIC endpoint (`rustls`).
//!
//! Every node certificate is signed by the cluster CA and names its node in
//! both the subject alternative name (DNS) and the common name. Both ends of
//! a link require a certificate chaining to the CA at the TLS handshake; the
//! fabric handshake then checks that the certificate is valid for the node
//! name the peer claims (see [`verify_peer_name`]).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::{ParsedCertificate, WebPkiClientVerifier},
    CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;

use crate::{
    error::{CertError, HandshakeError},
    id::NodeId,
    wire::ALPN,
};

/// A certificate and its private key, both PEM-encoded.
#[derive(Clone)]
pub struct CertifiedKeyPem {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The PKCS#8 private key (PEM). Keep it secret.
    pub key_pem: String,
}

impl fmt::Debug for CertifiedKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKeyPem")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a cluster CA (self-signed, may only sign end-entity certs).
pub fn generate_ca(common_name: &str) -> Result<CertifiedKeyPem, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Mafalda cluster");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok(CertifiedKeyPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// How long a node certificate is valid by default: 90 days.
pub const DEFAULT_NODE_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Generates a certificate for `node`, signed by the CA given in PEM, valid
/// from now for [`DEFAULT_NODE_CERT_VALIDITY`]. The node name goes into the
/// DNS SAN and the CN; the certificate is valid for both TLS server and
/// client authentication.
pub fn generate_node_cert(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node: &NodeId,
) -> Result<CertifiedKeyPem, CertError> {
    let now = SystemTime::now();
    generate_node_cert_valid(
        ca_cert_pem,
        ca_key_pem,
        node,
        now,
        now + DEFAULT_NODE_CERT_VALIDITY,
    )
}

/// [`generate_node_cert`] valid from `not_before` until `not_after`. Peers
/// refuse a certificate outside its validity (the TLS handshake fails).
pub fn generate_node_cert_valid(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    node: &NodeId,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertifiedKeyPem, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![node.as_str().to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = time::OffsetDateTime::from(not_before);
    params.not_after = time::OffsetDateTime::from(not_after);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertifiedKeyPem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Paths of a certificate and key written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Certificate PEM file.
    pub cert: PathBuf,
    /// Private key PEM file (mode 0600 on Unix).
    pub key: PathBuf,
}

/// Generates a CA into `dir` as `ca.pem` and `ca.key` (for `mafalda cluster ca`).
/// Refuses to overwrite existing files.
pub fn write_ca(dir: &Path) -> Result<CertFiles, CertError> {
    let ca = generate_ca("Mafalda cluster CA")?;
    write_pair(dir, "ca", &ca)
}

/// Generates a certificate for `node` signed by the CA files, valid for
/// [`DEFAULT_NODE_CERT_VALIDITY`], into `dir` as `NODE.pem` and `NODE.key`.
/// Refuses to overwrite existing files.
pub fn write_node_cert(
    dir: &Path,
    ca_cert: &Path,
    ca_key: &Path,
    node: &NodeId,
) -> Result<CertFiles, CertError> {
    write_node_cert_for(dir, ca_cert, ca_key, node, DEFAULT_NODE_CERT_VALIDITY).map(|(f, _)| f)
}

/// [`write_node_cert`] valid for `validity` from now (for `mafalda cluster
/// cert --node NAME --days N`); answers the files and when it expires.
pub fn write_node_cert_for(
    dir: &Path,
    ca_cert: &Path,
    ca_key: &Path,
    node: &NodeId,
    validity: Duration,
) -> Result<(CertFiles, SystemTime), CertError> {
    let ca_cert_pem = read_string(ca_cert)?;
    let ca_key_pem = read_string(ca_key)?;
    let now = SystemTime::now();
    let expires = now + validity;
    let pair = generate_node_cert_valid(&ca_cert_pem, &ca_key_pem, node, now, expires)?;
    Ok((write_pair(dir, node.as_str(), &pair)?, expires))
}

fn read_string(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_pair(dir: &Path, stem: &str, pair: &CertifiedKeyPem) -> Result<CertFiles, CertError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = CertFiles {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    write_new(&files.cert, pair.cert_pem.as_bytes(), 0o644).map_err(io(&files.cert))?;
    write_new(&files.key, pair.key_pem.as_bytes(), 0o600).map_err(io(&files.key))?;
    Ok(files)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// TLS material of a node: the cluster CA and the node's certificate + key.
#[derive(Clone)]
pub struct TlsConfig {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TlsConfig {
    /// Builds the configuration from PEM text: CA certificate, node
    /// certificate (chain) and node private key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let pem_err = |what| {
            move |e: rustls_pki_types::pem::Error| CertError::Pem {
                what,
                reason: e.to_string(),
            }
        };
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(pem_err("CA"))?;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err("certificate"))?;
        if chain.is_empty() {
            return Err(CertError::Pem {
                what: "certificate",
                reason: "no certificate found".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem_err("key"))?;
        Ok(Self {
            ca,
            chain,
            key: Arc::new(key),
        })
    }

    /// Builds the configuration from PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, CertError> {
        Self::from_pem(&read_string(ca)?, &read_string(cert)?, &read_string(key)?)
    }

    /// Checks that the node certificate is valid for `node`.
    pub fn check_name(&self, node: &NodeId) -> Result<(), CertError> {
        cert_valid_for(&self.chain[0], node).map_err(|reason| CertError::NameMismatch {
            node: node.clone(),
            reason,
        })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, CertError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.clone())
            .map_err(|e| CertError::Tls(format!("CA certificate: {e}")))?;
        Ok(Arc::new(roots))
    }

    /// The quinn server configuration: TLS 1.3, client certificate required.
    pub fn server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ServerConfig, CertError> {
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
            .build()
            .map_err(|e| CertError::Tls(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| CertError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| CertError::Tls(e.to_string()))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| CertError::Tls(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(transport);
        Ok(config)
    }

    /// The quinn client configuration: TLS 1.3, presents our certificate.
    /// The server's certificate must chain to the CA; its name is not
    /// checked here (the fabric handshake checks it).
    pub fn client_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ClientConfig, CertError> {
        let provider = provider();
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots()?,
            provider.clone(),
        )
        .build()
        .map_err(|e| CertError::Tls(e.to_string()))?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| CertError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ClusterServerVerifier { inner }))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| CertError::Tls(e.to_string()))?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| CertError::Tls(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        config.transport_config(transport);
        Ok(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert_valid_for(cert: &CertificateDer<'_>, node: &NodeId) -> Result<(), String> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(node.as_str()).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|e| e.to_string())
}

/// Checks that the certificate the peer presented on `conn` names `claimed`.
pub(crate) fn verify_peer_name(
    conn: &quinn::Connection,
    claimed: &NodeId,
) -> Result<(), HandshakeError> {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(HandshakeError::NoCertificate)?;
    let leaf = chain.first().ok_or(HandshakeError::NoCertificate)?;
    cert_valid_for(leaf, claimed).map_err(|reason| HandshakeError::NameMismatch {
        claimed: claimed.clone(),
        reason,
    })
}

/// Server certificate verifier for dialers: the chain must lead to the
/// cluster CA (checked by the WebPKI verifier); the *name* is checked after
/// the fabric handshake against the node name the peer claims, because a
/// dialer may only know a seed's address.
#[derive(Debug)]
struct ClusterServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // WebPKI checks the chain before the name: a name error means the
            // chain to the cluster CA is valid.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_and_node_cert() {
        let ca = generate_ca("test CA").unwrap();
        let node = NodeId::new("node-a").unwrap();
        let cert = generate_node_cert(&ca.cert_pem, &ca.key_pem, &node).unwrap();
        let tls = TlsConfig::from_pem(&ca.cert_pem, &cert.cert_pem, &cert.key_pem).unwrap();
        tls.check_name(&node).unwrap();
        assert!(tls.check_name(&NodeId::new("node-b").unwrap()).is_err());
        let transport = Arc::new(quinn::TransportConfig::default());
        tls.server_config(transport.clone()).unwrap();
        tls.client_config(transport).unwrap();
    }

    #[test]
    fn files_are_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("mafalda-tls-{}", rand::random::<u64>()));
        let ca = write_ca(&dir).unwrap();
        assert!(write_ca(&dir).is_err());
        let node = NodeId::new("n1").unwrap();
        let files = write_node_cert(&dir, &ca.cert, &ca.key, &node).unwrap();
        TlsConfig::from_files(&ca.cert, &files.cert, &files.key)
            .unwrap()
            .check_name(&node)
            .unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
