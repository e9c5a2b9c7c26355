//! `runs_logs`: a run's redacted log, sent as output in pieces.

use std::io::Read;

use anyhow::{Context as _, Result};
use supervisor_protocol::{OutputStream, Reply};

use super::runs_show::visible_run;
use crate::control::{Caller, Output};
use crate::run::{Engine, log_path};

/// The size of each piece of the log.
const PIECE: usize = 64 * 1024;

pub fn handle(engine: &Engine, caller: &Caller, id: &str, out: &mut dyn Output) -> Result<Reply> {
    let run = visible_run(engine, caller, id)?;
    let path = log_path(&engine.state_dir, &run.id);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Reply::Log {
                id: run.id,
                found: false,
            });
        }
        Err(e) => return Err(e).with_context(|| format!("reading the log of run {}", run.id)),
    };
    let mut buf = vec![0u8; PIECE];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading the log of run {}", run.id))?;
        if n == 0 {
            break;
        }
        out.output(OutputStream::Stdout, &buf[..n]);
    }
    Ok(Reply::Log {
        id: run.id,
        found: true,
    })
}
