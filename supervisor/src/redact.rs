//! Output redaction (placeholder until the streaming redactor lands).

/// Values shorter than this are not redacted.
pub const MIN_REDACTABLE_LEN: usize = 6;
