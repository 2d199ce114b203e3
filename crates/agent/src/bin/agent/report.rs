//! Sending records: framed with the nonce, on the console (or
//! `/dev/console` in full mode) and the virtio-serial port once it is found.

use crate::sys::{list, read};
use bootproof_agent::{frame, Record, Status, PORT_NAME};
use std::io::Write;

pub(crate) struct Reporter {
    pub(crate) nonce: String,
    pub(crate) passed: u32,
    pub(crate) failed: u32,
    pub(crate) port: Option<std::fs::File>,
    /// Full mode: records go to `/dev/console` (stdout belongs to whoever
    /// started the agent, e.g. cloud-init's log).
    pub(crate) console: Option<std::fs::File>,
}

/// The device of the virtio-serial port named [`PORT_NAME`], if present.
pub(crate) fn find_port() -> Option<std::fs::File> {
    for p in list("/sys/class/virtio-ports") {
        if read(&format!("/sys/class/virtio-ports/{p}/name")).is_some_and(|n| n.trim() == PORT_NAME)
        {
            return std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/dev/{p}"))
                .ok();
        }
    }
    None
}

impl Reporter {
    pub(crate) fn send(&mut self, r: &Record) {
        let line = frame(&self.nonce, r);
        if let Some(console) = &mut self.console {
            let _ = console.write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
        if let Some(port) = &mut self.port {
            let _ = port.write_all(line.as_bytes());
        }
    }

    pub(crate) fn check(&mut self, id: &str, status: Status, evidence: impl Into<String>) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip => {}
        }
        self.send(&Record::Check {
            id: id.into(),
            status,
            evidence: evidence.into(),
        });
    }

    pub(crate) fn pass_if(&mut self, id: &str, ok: bool, evidence: impl Into<String>) {
        self.check(id, if ok { Status::Pass } else { Status::Fail }, evidence);
    }
}
