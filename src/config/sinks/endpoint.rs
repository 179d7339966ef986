//! A sink's `url` (HEC, HTTP out), parsed once at validation into what the HTTP client dials
//! and the request paths it sends to.

use http::Uri;

/// Where a sink sends: parsed once from its `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// The URL's path without a trailing slash (`""` for the root); request paths go after it.
    pub path: String,
    /// The URL's query string, kept on every request (some receivers take a key there).
    query: Option<String>,
    /// `host:port` as sent in the Host header.
    authority: String,
}

impl Endpoint {
    /// Parses an `http://` or `https://` URL without query or fragment.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url:?} must start with http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{url:?} has no host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = match uri.authority() {
            Some(a) => a
                .as_str()
                .rsplit('@')
                .next()
                .unwrap_or(a.as_str())
                .to_owned(),
            None => format!("{host}:{port}"),
        };
        Ok(Endpoint {
            https,
            host,
            port,
            path: uri.path().trim_end_matches('/').to_owned(),
            query: uri.query().map(str::to_owned),
            authority,
        })
    }

    /// `host:port` as sent in the Host header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target: the URL's path, then `suffix`, then the URL's query.
    pub fn full_path(&self, suffix: &str) -> String {
        let mut p = format!("{}{}", self.path, suffix);
        if p.is_empty() {
            p.push('/');
        }
        if let Some(q) = &self.query {
            p.push('?');
            p.push_str(q);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_urls_with_default_ports_and_paths() {
        let e = Endpoint::parse("https://splunk.example:8088/").unwrap();
        assert!(e.https);
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("splunk.example", 8088, "")
        );
        assert_eq!(
            e.full_path("/services/collector/event"),
            "/services/collector/event"
        );
        let e = Endpoint::parse("http://127.0.0.1/in/hook").unwrap();
        assert_eq!((e.port, e.full_path("")), (80, "/in/hook".to_owned()));
        assert!(Endpoint::parse("ftp://x").is_err());
        let e = Endpoint::parse("http://x/in?key=a%20b").unwrap();
        assert_eq!(e.full_path(""), "/in?key=a%20b");
        assert!(Endpoint::parse("not a url").is_err());
    }
}
