//! TLS towards the registry beyond the platform's trust store: a private
//! CA to verify it by (`registry.ca_file`) and a client certificate to
//! present (`registry.certificate_file` with `registry.key_file`), read
//! once when the configuration is, so a bad file is a configuration error
//! naming its key, not a failure at the first request.

use std::path::Path;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::RegistryConfig;

/// The certificates and key `[registry]` names, parsed.
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// Verify the registry by these only, instead of the platform's roots.
    roots: Option<Vec<Certificate<'static>>>,
    client: Option<ClientCert>,
}

impl std::fmt::Debug for TlsFiles {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl TlsFiles {
    /// Reads the files `config` names, relative to `base` (the
    /// configuration file's directory). An error names the key.
    pub(crate) fn read(
        config: &RegistryConfig,
        base: &Path,
    ) -> Result<Self, (&'static str, String)> {
        let read = |key: &'static str, name: &str| {
            std::fs::read(base.join(name)).map_err(|e| (key, format!("{name}: {e}")))
        };
        let roots = match &config.ca_file {
            Some(name) => Some(certificates("ca_file", name, &read("ca_file", name)?)?),
            None => None,
        };
        let client = match (&config.certificate_file, &config.key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let chain =
                    certificates("certificate_file", cert, &read("certificate_file", cert)?)?;
                let key_pem = read("key_file", key)?;
                let private = PrivateKey::from_pem(&key_pem)
                    .map_err(|e| ("key_file", format!("{key}: no PEM private key ({e})")))?;
                Some(ClientCert::new_with_certs(&chain, private))
            }
            (Some(_), None) => {
                return Err(("key_file", "certificate_file needs its key_file".into()));
            }
            (None, Some(_)) => {
                return Err((
                    "certificate_file",
                    "key_file needs its certificate_file".into(),
                ));
            }
        };
        Ok(Self { roots, client })
    }

    pub(crate) fn tls_config(&self) -> TlsConfig {
        let roots = match &self.roots {
            Some(certs) => RootCerts::new_with_certs(certs),
            None => RootCerts::PlatformVerifier,
        };
        TlsConfig::builder()
            .root_certs(roots)
            .client_cert(self.client.clone())
            .build()
    }
}

/// Every certificate of a PEM file; at least one.
fn certificates(
    key: &'static str,
    name: &str,
    pem: &[u8],
) -> Result<Vec<Certificate<'static>>, (&'static str, String)> {
    let mut found = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => found.push(cert),
            Ok(_) => {}
            Err(e) => return Err((key, format!("{name}: {e}"))),
        }
    }
    if found.is_empty() {
        return Err((key, format!("{name}: no PEM certificate in it")));
    }
    Ok(found)
}
