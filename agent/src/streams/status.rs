//! The metav1 `Status` an exec or attach session ends with, on its error stream, worded as
//! kubelet words it (kubectl reads the exit code from the `ExitCode` cause).

use serde_json::{Value, json};

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The command ran and exited with this non-zero code.
    Exit {
        cmd: Vec<String>,
        code: u32,
    },
    /// The session could not run (or went wrong): the message says why.
    Error(String),
}

impl Outcome {
    pub fn from_exit(cmd: &[String], code: u32) -> Outcome {
        if code == 0 {
            Outcome::Success
        } else {
            Outcome::Exit {
                cmd: cmd.to_vec(),
                code,
            }
        }
    }

    /// The Status JSON (error stream of protocol v4 and later).
    pub fn status(&self) -> Value {
        match self {
            Outcome::Success => json!({"metadata": {}, "status": "Success"}),
            Outcome::Exit { .. } => json!({
                "metadata": {},
                "status": "Failure",
                "message": self.message(),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": self.code().to_string()}]},
            }),
            Outcome::Error(_) => json!({
                "metadata": {},
                "status": "Failure",
                "message": self.message(),
                "reason": "InternalError",
                "details": {"causes": [{"message": self.message()}]},
                "code": 500,
            }),
        }
    }

    /// The plain message (error stream of the older protocols; empty on success).
    pub fn message(&self) -> String {
        match self {
            Outcome::Success => String::new(),
            Outcome::Exit { cmd, code } => format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            Outcome::Error(m) => format!("Internal error occurred: {m}"),
        }
    }

    fn code(&self) -> u32 {
        match self {
            Outcome::Exit { code, .. } => *code,
            _ => 0,
        }
    }

    /// What goes on the error stream for this protocol version.
    pub fn encode(&self, json_status: bool) -> Vec<u8> {
        if json_status {
            serde_json::to_vec(&self.status()).unwrap_or_default()
        } else {
            self.message().into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_kubectl_reads_them() {
        let s = Outcome::from_exit(&["sh".into(), "-c".into(), "exit 3".into()], 3).status();
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(Outcome::from_exit(&[], 0).status()["status"], "Success");
        assert!(Outcome::Success.encode(false).is_empty());
        let e = Outcome::Error("boom".into());
        assert_eq!(e.status()["message"], "Internal error occurred: boom");
    }
}
