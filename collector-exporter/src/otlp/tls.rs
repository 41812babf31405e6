//! The TLS material an `https://` endpoint uses: a private CA to trust instead of
//! the public roots, and a client certificate and key for mutual TLS. Files are
//! read and their PEM checked when the pipeline starts. A problem with a file named
//! in code or in the configuration file is a [`SetupError`]; one named by an
//! environment variable is a warning, and the exporter goes on without it.

use crate::config::{Origin, OtlpConfig, TlsFile};
use crate::error::SetupError;

/// PEM bytes, checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Material {
    /// CA certificates to trust instead of the public roots.
    pub(crate) ca: Option<Vec<u8>>,
    /// Client certificate chain and private key, for mutual TLS.
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Certificates,
    PrivateKey,
}

/// Reads `file` and checks it holds what `kind` needs; the error says which
/// setting named it and what is wrong, never the content.
fn read(file: &TlsFile, kind: Kind) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(&file.path).map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
    check_pem(&bytes, kind).map_err(|why| format!("{}: {why}", file.path.display()))?;
    Ok(bytes)
}

#[cfg(feature = "tls")]
fn check_pem(bytes: &[u8], kind: Kind) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    match kind {
        Kind::Certificates => {
            let mut count = 0;
            for cert in CertificateDer::pem_slice_iter(bytes) {
                cert.map_err(|e| format!("not a valid PEM certificate file ({e})"))?;
                count += 1;
            }
            if count == 0 {
                return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
            }
            Ok(())
        }
        Kind::PrivateKey => PrivateKeyDer::from_pem_slice(bytes)
            .map(drop)
            .map_err(|_| "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into()),
    }
}

#[cfg(not(feature = "tls"))]
fn check_pem(_: &[u8], _: Kind) -> Result<(), String> {
    Ok(())
}

/// A file problem: an error for code and the configuration file, a warning (and
/// `None`) for the environment.
fn problem(origin: &Origin, why: String, fallback: &str) -> Result<(), SetupError> {
    match origin {
        Origin::Env(var) => {
            crate::report::warn_once(&format!("{var}: {why}; {fallback}"));
            Ok(())
        }
        _ => Err(SetupError::Tls {
            setting: origin.to_string(),
            message: why,
        }),
    }
}

impl Material {
    /// Loads what `config` names; nothing for a plain `http://` endpoint.
    pub(crate) fn load(config: &OtlpConfig) -> Result<Material, SetupError> {
        let tls = &config.tls;
        let named = [&tls.certificate, &tls.client_certificate, &tls.client_key];
        if !config.endpoint.starts_with("https://") {
            for file in named.into_iter().flatten() {
                crate::report::warn_once(&format!(
                    "{} is set but the OTLP endpoint {} is not https://; it is not used",
                    file.origin,
                    super::display_endpoint(&config.endpoint)
                ));
            }
            return Ok(Material::default());
        }
        let mut material = Material::default();
        if let Some(file) = &tls.certificate {
            match read(file, Kind::Certificates) {
                Ok(pem) => material.ca = Some(pem),
                Err(why) => problem(&file.origin, why, "trusting the public roots instead")?,
            }
        }
        match (&tls.client_certificate, &tls.client_key) {
            (Some(cert), Some(key)) => {
                let pair = read(cert, Kind::Certificates)
                    .map_err(|why| (&cert.origin, why))
                    .and_then(|c| {
                        read(key, Kind::PrivateKey)
                            .map(|k| (c, k))
                            .map_err(|why| (&key.origin, why))
                    });
                match pair {
                    Ok(pair) => material.identity = Some(pair),
                    Err((origin, why)) => problem(origin, why, "connecting without a client certificate")?,
                }
            }
            (Some(one), None) | (None, Some(one)) => {
                let missing = match (&one.origin, tls.client_certificate.is_some()) {
                    (Origin::Env(_), true) => "OTEL_EXPORTER_OTLP_[METRICS_]CLIENT_KEY",
                    (Origin::Env(_), false) => "OTEL_EXPORTER_OTLP_[METRICS_]CLIENT_CERTIFICATE",
                    (_, true) => "the client key",
                    (_, false) => "the client certificate",
                };
                problem(
                    &one.origin,
                    format!("mutual TLS needs {missing} too"),
                    "connecting without a client certificate",
                )?;
            }
            (None, None) => {}
        }
        Ok(material)
    }
}
