//! The daemon's outbound HTTP: replies to Slack and Linear. HTTPS with the
//! bundled web PKI roots (no system CA store needed), plain HTTP only
//! because tests point API bases at fake servers on 127.0.0.1 (config
//! validation refuses plain HTTP anywhere else).

use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read.
const MAX_RESPONSE: usize = 1024 * 1024;

/// The connector every outbound client uses.
pub fn connector() -> HttpsConnector<HttpConnector> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build()
}

/// A small JSON-over-HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A response: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpClient {
    pub fn new() -> HttpClient {
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector()),
        }
    }

    /// POSTs `body` as JSON with the given extra headers (such as
    /// `Authorization`; never logged).
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Reply> {
        let mut req = Request::post(url).header("content-type", "application/json; charset=utf-8");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))
            .context("building the request")?;
        let work = async {
            let res = self
                .inner
                .request(req)
                .await
                .context("sending the request")?;
            let (parts, body) = res.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("reading the response: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}
