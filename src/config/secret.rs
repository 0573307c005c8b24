//! Secret-bearing configuration values, masked by construction.
//!
//! Owns: [`Secret`] (a password, token or secret file's contents), [`SecretUrl`]
//! (a URL that may carry `user:password@`), [`Headers`] (a client's
//! `headers`, whose credential-like values are secrets), and [`redact_url`],
//! the one place that knows how a URL is shown.
//!
//! Masks, as Promtail prints them: a non-empty [`Secret`] is `<secret>` in
//! `Debug` and serialisation (an empty one stays empty, so "not set" is
//! still visible); a URL's password is `***` (the user name stays, as Go's
//! `URL.Redacted` keeps it); a header whose name looks like a credential
//! (see [`is_sensitive_header`]) has its value shown as `<secret>`.
//!
//! The clear text is reachable only through the explicitly named
//! `expose()`, which the code that sends the credential calls.
//!
//! Must never: implement `Display`/`Debug`/`Serialize` in a way that shows
//! the clear text, or offer a `Deref` to it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// What a masked secret prints as (Promtail's `config.Secret`).
pub const MASK: &str = "<secret>";

/// What a URL's password prints as.
pub const URL_PASSWORD_MASK: &str = "***";

/// A secret string: a password, a token, the contents of a secret file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The clear text, for the code that sends it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What `Debug` and serialisation show.
    fn masked(&self) -> &'static str {
        if self.0.is_empty() {
            ""
        } else {
            MASK
        }
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.masked(), f)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.masked())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// `text` with the password of every `scheme://user:password@host` in it
/// replaced by `***`. Works on text that is not a valid URL too (config
/// errors quote what the user wrote), and on messages that contain URLs.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the path, query, fragment or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(URL_PASSWORD_MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A URL from the config (`url`, `proxy_url`, `api_server`) that may carry
/// credentials. Shown and serialised with the password as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL with its credentials, for the code that connects. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL with its password masked.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl From<&str> for SecretUrl {
    fn from(s: &str) -> SecretUrl {
        SecretUrl(s.to_string())
    }
}

impl From<String> for SecretUrl {
    fn from(s: String) -> SecretUrl {
        SecretUrl(s)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretUrl)
    }
}

/// True for a header whose value is a credential: its name (any case)
/// contains `auth` (Authorization, Proxy-Authorization, X-Auth-Token),
/// `cookie`, `token`, `key` (X-API-Key), `secret`, `pass`, `session`,
/// `credential` or `signature`.
pub fn is_sensitive_header(name: &str) -> bool {
    const WORDS: [&str; 9] = [
        "auth",
        "cookie",
        "token",
        "key",
        "secret",
        "pass",
        "session",
        "credential",
        "signature",
    ];
    let n = name.to_ascii_lowercase();
    WORDS.iter().any(|w| n.contains(w))
}

/// A client's `headers`: name → value. Values of credential-like names
/// ([`is_sensitive_header`]) print as `<secret>`; the rest as they are.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl Headers {
    /// The headers as they are sent. Never log the values.
    pub fn expose(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names and values as shown: credential-like values masked.
    fn masked(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, v)| {
                let shown = if is_sensitive_header(k) && !v.is_empty() {
                    MASK
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.masked(), f)
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.masked().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_debug_and_yaml() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "\"<secret>\"");
        assert_eq!(serde_yaml_ng::to_string(&s).unwrap().trim(), "<secret>");
        assert_eq!(s.expose(), "hunter2");
        let empty = Secret::default();
        assert_eq!(format!("{empty:?}"), "\"\"");
        let back: Secret = serde_yaml_ng::from_str("hunter2").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn url_passwords_are_masked() {
        let cases = [
            (
                "https://user:pa55@loki.example/loki/api/v1/push",
                "https://user:***@loki.example/loki/api/v1/push",
            ),
            ("http://u:p@h:3100", "http://u:***@h:3100"),
            ("http://u:p:q@h/x?a=b@c", "http://u:***@h/x?a=b@c"),
            ("http://tokenuser@h/", "http://tokenuser@h/"),
            ("http://h/a@b", "http://h/a@b"),
            ("not a url", "not a url"),
            (
                "error sending request for url (http://a:b@h/p): refused; proxy socks5://x:y@p:1",
                "error sending request for url (http://a:***@h/p): refused; proxy socks5://x:***@p:1",
            ),
            ("\"http://a:b@h\" is bad", "\"http://a:***@h\" is bad"),
            ("://", "://"),
            ("x://@", "x://@"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
        let u = SecretUrl::from("https://user:pa55@h/p");
        assert_eq!(u.to_string(), "https://user:***@h/p");
        assert_eq!(format!("{u:?}"), "\"https://user:***@h/p\"");
        assert!(!serde_yaml_ng::to_string(&u).unwrap().contains("pa55"));
        assert_eq!(u.expose(), "https://user:pa55@h/p");
    }

    #[test]
    fn credential_like_headers_are_masked() {
        for n in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-API-Key",
            "X-Auth-Token",
            "apikey",
            "X-Session-Id",
        ] {
            assert!(is_sensitive_header(n), "{n}");
        }
        for n in ["X-Scope-OrgID", "User-Agent", "X-Team", "Accept"] {
            assert!(!is_sensitive_header(n), "{n}");
        }
        let mut h = Headers::default();
        h.insert("Authorization", "Bearer abc");
        h.insert("X-Team", "blue");
        let shown = format!("{h:?}");
        assert!(!shown.contains("abc") && shown.contains("blue"), "{shown}");
        let y = serde_yaml_ng::to_string(&h).unwrap();
        assert!(!y.contains("abc") && y.contains("<secret>"), "{y}");
        assert_eq!(h.expose()["Authorization"], "Bearer abc");
    }
}
