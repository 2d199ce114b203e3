//! A minimal QMP client (QEMU Machine Protocol, JSON lines over a unix
//! socket): enough to end a VM cleanly and, later, to hotplug devices.
//! Replies are bounded; asynchronous events are skipped while waiting for a
//! command's reply.

use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest QMP message accepted.
const MAX_MESSAGE: u64 = 1 << 20;

/// A QMP connection in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(socket: &Path, timeout: Duration) -> io::Result<Qmp> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut q = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = q.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        q.execute("qmp_capabilities", Value::Null)?;
        Ok(q)
    }

    fn read_message(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        let n = Read::take(&mut self.reader, MAX_MESSAGE).read_line(&mut line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "QMP closed"));
        }
        serde_json::from_str(&line).map_err(io::Error::other)
    }

    /// Runs a command; returns its `return` value or its error as an I/O error.
    pub fn execute(&mut self, command: &str, arguments: Value) -> io::Result<Value> {
        let mut msg = json!({ "execute": command });
        if !arguments.is_null() {
            msg["arguments"] = arguments;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let v = self.read_message()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(io::Error::other(format!("QMP {command}: {e}")));
            }
            // An event ({"event": …}): not ours, keep reading.
        }
    }
}
