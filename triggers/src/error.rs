//! Why a request was refused. Messages name headers and reasons, never a
//! secret, a signature or the body's content, so they are safe to log.

/// A request that failed authentication: answer 401 and start nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    #[error("stale timestamp: {skew_ms} ms away from now")]
    Stale { skew_ms: u64 },
    #[error("bad signature")]
    BadSignature,
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// An empty key would make every signature computable by anyone.
    #[error("the signing secret is empty")]
    EmptySecret,
}

impl VerifyError {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::MalformedHeader(_) => "malformed",
            VerifyError::Stale { .. } => "stale",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::TooLarge { .. } => "too_large",
            VerifyError::EmptySecret => "no_secret",
        }
    }
}

/// An authenticated body that is not what the source sends: answer 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// serde_json's own message can quote the body, so only its category
    /// and position are kept.
    #[error(
        "the body is not JSON of the expected shape ({kind} error at line {line}, column {column})"
    )]
    Json {
        kind: &'static str,
        line: usize,
        column: usize,
    },
    #[error("the body lacks {0}")]
    Missing(&'static str),
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        ParseError::Json {
            kind: match e.classify() {
                Category::Io => "io",
                Category::Syntax => "syntax",
                Category::Data => "data",
                Category::Eof => "eof",
            },
            line: e.line(),
            column: e.column(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_quote_the_body() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u64,
        }
        let e = serde_json::from_str::<T>(r#"{"n":"xoxb-leaked-token"}"#).unwrap_err();
        assert!(e.to_string().contains("xoxb-leaked-token"), "premise: {e}");
        let ours = ParseError::from(e).to_string();
        assert!(!ours.contains("xoxb"), "{ours}");
        assert!(ours.contains("data error at line 1"), "{ours}");
    }

    #[test]
    fn labels() {
        assert_eq!(VerifyError::BadSignature.label(), "bad_signature");
        assert_eq!(VerifyError::Stale { skew_ms: 1 }.label(), "stale");
        assert_eq!(VerifyError::MissingHeader("X").label(), "missing_header");
        assert_eq!(VerifyError::MalformedHeader("X").label(), "malformed");
        assert_eq!(
            VerifyError::MissingHeader("X-Slack-Signature").to_string(),
            "missing header X-Slack-Signature"
        );
    }
}
