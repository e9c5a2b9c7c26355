//! What the benchmarks share: log lines like an agent's, with a secret printed now and then,
//! and the secrets themselves (reproducible: xorshift64, no dependency); and the timing of a
//! whole command.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Secrets in scope in every benchmark.
pub const SECRETS: usize = 100;
/// One line in this many prints a secret.
pub const SECRET_EVERY: u64 = 2_000;

/// `SECRETS` token-like values of 20 to 60 characters.
pub fn values(rng: &mut Rng) -> Vec<String> {
    (0..SECRETS)
        .map(|_| {
            let len = 20 + rng.below(41);
            token(rng, len)
        })
        .collect()
}

/// About `size` bytes of log lines; returns them and how many secrets were printed.
pub fn log_output(rng: &mut Rng, size: usize, values: &[String]) -> (Vec<u8>, usize) {
    const LEVELS: [&str; 4] = ["INFO ", "DEBUG", "WARN ", "INFO "];
    const MODULES: [&str; 5] = [
        "agent::tools::shell",
        "agent::llm",
        "http::client",
        "git::fetch",
        "fs::watch",
    ];
    const WORDS: [&str; 16] = [
        "request",
        "completed",
        "the",
        "file",
        "updated",
        "tokens",
        "with",
        "status",
        "retrying",
        "branch",
        "origin/main",
        "cache",
        "miss",
        "for",
        "response",
        "ok",
    ];
    let mut out = Vec::with_capacity(size + 512);
    let mut planted = 0;
    let mut line = 0u64;
    while out.len() < size {
        line += 1;
        let (h, m, s) = (line / 3_600_000 % 24, line / 60_000 % 60, line / 1000 % 60);
        write!(
            out,
            "2026-11-03T{h:02}:{m:02}:{s:02}.{:03}Z {} {}{{run={:08x}}}: ",
            line % 1000,
            LEVELS[rng.below(LEVELS.len())],
            MODULES[rng.below(MODULES.len())],
            rng.next() as u32,
        )
        .expect("write to Vec");
        for _ in 0..3 + rng.below(10) {
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
            out.push(b' ');
        }
        if line % SECRET_EVERY == 0 {
            write!(
                out,
                "Authorization: Bearer {}",
                values[rng.below(values.len())]
            )
            .expect("write to Vec");
            planted += 1;
        } else {
            write!(
                out,
                "in {}ms bytes={}",
                rng.below(900),
                rng.next() % 100_000
            )
            .expect("write to Vec");
        }
        out.push(b'\n');
    }
    (out, planted)
}

/// A random token in the URL-safe base64 alphabet, like most API keys.
pub fn token(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
        .collect()
}

/// xorshift64: reproducible data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Where a timed command's standard output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A pipe this process reads to its end, as a terminal or a log collector reads.
    Pipe,
    Null,
}

/// Wall time of `cmd` from spawn to exit, its output read to the end; the output too when
/// `keep`. Panics unless the command succeeds.
pub fn time(mut cmd: Command, sink: Sink, keep: bool) -> (Duration, Vec<u8>) {
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    cmd.stdout(match sink {
        Sink::Pipe => Stdio::piped(),
        Sink::Null => Stdio::null(),
    });
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut kept = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match out.read(&mut buf).expect("read the output") {
                0 => break,
                n if keep => kept.extend_from_slice(&buf[..n]),
                _ => {}
            }
        }
    }
    let status = child.wait().expect("wait");
    let wall = start.elapsed();
    assert!(status.success(), "{status}");
    (wall, kept)
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The median of `times`.
pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
