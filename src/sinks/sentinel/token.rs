//! Microsoft Entra access tokens for the Sentinel sink: the OAuth 2.0 client credentials grant
//! (`POST {authority}/{tenant}/oauth2/v2.0/token`, form fields `grant_type=client_credentials`,
//! `client_id`, `client_secret`, `scope`; answer `{"token_type":"Bearer","expires_in":3599,
//! "access_token":"..."}`; errors `{"error":"invalid_client","error_description":"AADSTS..."}`
//! — "Microsoft identity platform and the OAuth 2.0 client credentials flow",
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//!
//! The token is cached and fetched again before it expires (a few minutes early, or halfway
//! through a short lifetime), so a send rarely waits for one; [`TokenClient::invalidate`]
//! drops it when the ingestion endpoint answers 401.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use tokio::time::Instant;

use crate::config::SentinelSettings;
use crate::secret::Secret;
use crate::sinks::http_client::HttpClient;
use crate::sinks::retry::SendError;

const USER_AGENT_VALUE: &str = concat!("siemgate/", env!("CARGO_PKG_VERSION"));
/// Fetch a new token this long before the old one expires (at most halfway through its life).
const REFRESH_EARLY: Duration = Duration::from_secs(300);
/// Longest lifetime believed: Entra's are about an hour; a bigger number is a broken answer.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Characters of an error description kept for the log and `/readyz`.
const MAX_DESCRIPTION: usize = 200;

struct Token {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
}

pub struct TokenClient {
    client: HttpClient,
    path: String,
    client_id: String,
    secret: Secret,
    scope: String,
    token: Option<Token>,
    /// Tokens fetched, for the log.
    fetched: u64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Lifetime>,
}

/// `expires_in` is a number on the v2.0 endpoint and a string on older ones.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lifetime {
    Seconds(u64),
    Text(String),
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// `application/x-www-form-urlencoded` value encoding (unreserved characters kept).
fn form_value(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl TokenClient {
    pub fn new(settings: &SentinelSettings) -> TokenClient {
        TokenClient {
            client: HttpClient::new(
                settings.authority.clone(),
                settings.authority_tls.as_ref(),
                settings.connect_timeout,
                settings.request_timeout,
            ),
            path: settings.token_path.clone(),
            client_id: settings.client_id.clone(),
            secret: settings.client_secret.clone(),
            scope: settings.scope.clone(),
            token: None,
            fetched: 0,
        }
    }

    /// The `Authorization` value to send: the cached token, or a new one when it is due.
    pub async fn bearer(&mut self) -> Result<HeaderValue, SendError> {
        match &self.token {
            Some(t) if Instant::now() < t.refresh_at => Ok(t.header.clone()),
            _ => self.fetch().await,
        }
    }

    /// Forgets the cached token (the ingestion endpoint said it is no longer valid).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    async fn fetch(&mut self) -> Result<HeaderValue, SendError> {
        let mut form = String::with_capacity(256);
        form.push_str("grant_type=client_credentials&client_id=");
        form_value(&self.client_id, &mut form);
        form.push_str("&scope=");
        form_value(&self.scope, &mut form);
        form.push_str("&client_secret=");
        form_value(self.secret.expose(), &mut form);
        let mut req = Request::new(Full::new(Bytes::from(form)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.path.parse().unwrap_or_default();
        req.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        req.headers_mut()
            .insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        let reply = self.client.send(req).await.map_err(|e| {
            let e = SendError::from(e);
            match e {
                SendError::Retryable {
                    reason,
                    retry_after,
                } => SendError::Retryable {
                    reason: format!("token endpoint: {reason}"),
                    retry_after,
                },
                SendError::Config(reason) => SendError::Config(format!("token endpoint: {reason}")),
            }
        })?;
        if !reply.status.is_success() {
            let answer: Option<ErrorAnswer> = serde_json::from_slice(&reply.body).ok();
            let (code, description) = answer
                .map(|a| (a.error, a.error_description))
                .unwrap_or_default();
            let description: String = description
                .as_deref()
                .and_then(|d| d.lines().next())
                .unwrap_or("")
                .chars()
                .take(MAX_DESCRIPTION)
                .collect();
            let reason = format!(
                "token endpoint answered {}: {}: {description}",
                reply.status,
                code.as_deref().unwrap_or("error")
            );
            if let Some(retry) = reply.retryable(&reason) {
                return Err(retry);
            }
            return Err(SendError::Config(reason));
        }
        let answer: TokenAnswer = serde_json::from_slice(&reply.body)
            .map_err(|e| SendError::retryable(format!("token endpoint: unreadable answer: {e}")))?;
        let lifetime = match answer.expires_in {
            Some(Lifetime::Seconds(s)) => Duration::from_secs(s),
            Some(Lifetime::Text(t)) => Duration::from_secs(t.trim().parse().unwrap_or(0)),
            None => Duration::from_secs(3600),
        }
        .min(MAX_LIFETIME);
        let mut header = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| {
                SendError::Config(
                    "token endpoint: the access token is not a valid header value".to_owned(),
                )
            })?;
        header.set_sensitive(true);
        let early = REFRESH_EARLY.min(lifetime / 2);
        self.token = Some(Token {
            header: header.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(early),
        });
        self.fetched += 1;
        tracing::debug!(
            fetched = self.fetched,
            lifetime_s = lifetime.as_secs(),
            "fetched a Microsoft Entra token"
        );
        Ok(header)
    }

    /// The status of the last answer of the token endpoint.
    pub fn last_status(&self) -> Option<StatusCode> {
        self.client
            .last_status()
            .and_then(|s| StatusCode::from_u16(s).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_escape_everything_but_unreserved() {
        let mut out = String::new();
        form_value("https://monitor.azure.com/.default", &mut out);
        assert_eq!(out, "https%3A%2F%2Fmonitor.azure.com%2F.default");
        out.clear();
        form_value("a+b=c&d~e f", &mut out);
        assert_eq!(out, "a%2Bb%3Dc%26d~e%20f");
    }
}
