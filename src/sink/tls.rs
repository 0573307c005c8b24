//! What a failed TLS handshake with Loki means, in words a user can act on.
//!
//! Owns: [`explain`], which finds the TLS error (rustls's, carried inside
//! reqwest's and hyper's errors, possibly wrapped in an `io::Error`) in an
//! error's chain and says which check failed — the server's certificate is
//! from an unknown authority, has expired or is not yet valid, names
//! another host; or the server refused or wanted a client certificate —
//! and which `tls_config` setting is the lever.
//!
//! Must never: change how a connection is made, or print anything from a
//! certificate but names and dates.

use rustls::{AlertDescription, CertificateError, Error as TlsError};
use std::error::Error;

/// The TLS failure in `e`'s chain, explained; `None` if it holds none.
pub fn explain(e: &(dyn Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = tls_error(err) {
            return Some(describe(t));
        }
        cur = err.source();
    }
    None
}

/// `err` itself, or the error inside it when it is an `io::Error` (whose
/// `source` skips the error it wraps), however many `io::Error`s deep:
/// hyper-rustls wraps tokio-rustls's `io::Error` in another.
fn tls_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a TlsError> {
    let mut cur = err;
    for _ in 0..8 {
        if let Some(t) = cur.downcast_ref::<TlsError>() {
            return Some(t);
        }
        let inner = cur.downcast_ref::<std::io::Error>()?.get_ref()?;
        cur = inner;
    }
    None
}

fn describe(e: &TlsError) -> String {
    match e {
        TlsError::InvalidCertificate(c) => describe_cert(c),
        TlsError::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure,
        ) => format!(
            "TLS: the server refused the connection ({e}): it may require a client \
             certificate (tls_config.cert_file and key_file)"
        ),
        TlsError::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => format!(
            "TLS: the server refused our client certificate ({e}): check \
             tls_config.cert_file against the CA the server trusts"
        ),
        other => format!("TLS: {other}"),
    }
}

fn describe_cert(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "TLS: unknown certificate authority: the server's \
             certificate is not signed by a CA this client trusts (set tls_config.ca_file to \
             the CA that signed it)"
            .to_string(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("TLS: the server's certificate has expired ({c})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("TLS: the server's certificate is not valid yet ({c}); check this node's clock")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "TLS: host name mismatch: {c} (use a URL with a name the certificate holds, \
                 or set tls_config.server_name)"
            )
        }
        other => format!("TLS: invalid server certificate: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    /// As reqwest hands it over: tokio-rustls's `io::Error` inside
    /// hyper-rustls's, inside the client's error.
    fn wrapped(e: TlsError) -> Outer {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        Outer(std::io::Error::other(io))
    }

    #[test]
    fn tells_the_certificate_checks_apart() {
        let said = |c| explain(&wrapped(TlsError::InvalidCertificate(c))).unwrap();
        assert!(said(CertificateError::UnknownIssuer).contains("unknown certificate authority"));
        assert!(said(CertificateError::Expired).contains("expired"));
        assert!(said(CertificateError::NotValidForName).contains("host name mismatch"));
        assert!(said(CertificateError::NotValidYet).contains("not valid yet"));
        let alert = explain(&wrapped(TlsError::AlertReceived(
            AlertDescription::CertificateRequired,
        )))
        .unwrap();
        assert!(alert.contains("client certificate"), "{alert}");
    }

    #[test]
    fn other_errors_are_not_tls() {
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(explain(&e), None);
    }
}
