//! Running a command in a running container (an exec process of its task).

use std::time::Duration;

use super::Containerd;
use crate::runtime::{Error, ExecOutput, Result};

impl Containerd {
    pub(crate) async fn exec_in(
        &self,
        id: &str,
        _cmd: &[String],
        _timeout: Duration,
    ) -> Result<ExecOutput> {
        Err(Error::InvalidSpec {
            id: id.to_string(),
            reason: "exec is not implemented yet".into(),
        })
    }
}
