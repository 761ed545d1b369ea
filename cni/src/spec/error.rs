use std::fmt;

use serde::Serialize;

/// The error codes the spec reserves (codes 1–99).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    NotAvailable = 50,
    NotAvailableDegraded = 51,
    /// Plugin-specific failures use codes from 100 on.
    Internal = 100,
}

/// The spec's error object: printed on stdout as JSON with a non-zero exit status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl Error {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Error {
        self.details = details.into();
        self
    }

    pub fn io(msg: impl Into<String>, err: impl fmt::Display) -> Error {
        Error::new(ErrorCode::Io, msg).with_details(err.to_string())
    }

    pub fn internal(msg: impl Into<String>, err: impl fmt::Display) -> Error {
        Error::new(ErrorCode::Internal, msg).with_details(err.to_string())
    }

    pub fn config(msg: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidConfig, msg)
    }

    pub fn to_json(&self, version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Wire {
            cni_version: version,
            code: self.code as u32,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| format!("{{\"code\":{},\"msg\":\"error\"}}", self.code as u32))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.msg, self.details)
        }
    }
}
