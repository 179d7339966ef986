//! The web console: three static files compiled into the binary (`console/`: HTML, CSS and
//! plain JavaScript, no build step), served on the admin listener at `/`, `/console.css` and
//! `/console.js` without a token (they hold no data). Everything they show comes from the
//! admin API, called by the page with the token the operator signs in with (kept in the tab's
//! session storage). The Content-Security-Policy allows only these files and calls to this
//! origin: no inline script or style, no other origin, no framing; the script writes text
//! nodes only, never HTML, so an event's payload cannot run in the page.

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;

const INDEX: &str = include_str!("console/index.html");
const CSS: &str = include_str!("console/console.css");
const JS: &str = include_str!("console/console.js");

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The file at `path`, with its headers; `None` for any other path.
pub fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    let (body, kind) = match path {
        "/" | "/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/console.css" => (CSS, "text/css; charset=utf-8"),
        "/console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_served_with_a_strict_policy_and_nothing_else_is() {
        for path in ["/", "/console.css", "/console.js"] {
            let r = asset(path);
            assert!(r.is_some(), "{path}");
            let r = r.unwrap_or_default();
            assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        assert!(asset("/api/v1/sources").is_none());
        assert!(asset("/console.js.map").is_none());
        // The page loads its script and style from files, never inline.
        assert!(INDEX.contains(r#"<script src="/console.js""#));
        assert!(!INDEX.contains("<script>"));
        assert!(!INDEX.contains("style="));
        assert!(!JS.contains("innerHTML"));
        assert!(!JS.contains("eval("));
    }
}
