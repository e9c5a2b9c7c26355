//! Throughput of the output redactor against `cat` through a pipe, on the same log-like output
//! with a secret printed now and then.
//!
//! Run with `cargo bench -p supervisor --bench redact`; `REDACT_BENCH_MB` sets the output size
//! in MiB (default 200) for a quicker run.

use std::hint::black_box;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use supervisor::redact::Redactor;

/// Size of each push, like one read from the agent's pipe.
const CHUNK: usize = 64 * 1024;
const SECRETS: usize = 100;
/// Each measurement is the best of this many runs, to shed scheduler noise.
const RUNS: usize = 3;
/// One line in this many prints a secret.
const SECRET_EVERY: u64 = 2_000;

fn main() {
    let mib: usize = std::env::var("REDACT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values: Vec<String> = (0..SECRETS)
        .map(|_| {
            let len = 20 + rng.below(41);
            token(&mut rng, len)
        })
        .collect();
    let secrets: Vec<(String, SecretString)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("SECRET_{i:03}"), SecretString::from(v.as_str())))
        .collect();
    let redactor = Arc::new(Redactor::new(
        secrets.iter().map(|(name, value)| (name.as_str(), value)),
    ));
    let (output, planted) = log_output(&mut rng, mib << 20, &values);

    let cat = best_of(|| {
        assert_eq!(cat_through_pipe(&output), output.len());
    });
    let mut replacements = 0;
    let redact = best_of(|| replacements = redact_in_pushes(&redactor, &output));
    assert_eq!(replacements, planted, "every planted secret is redacted");

    let rate = |d: Duration| output.len() as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{} MiB of log output, {SECRETS} secrets, {} KiB pushes, best of {RUNS}",
        mib,
        CHUNK / 1024
    );
    println!("cat through a pipe: {:8.0} MB/s", rate(cat));
    println!(
        "redactor:           {:8.0} MB/s ({replacements} replacements)",
        rate(redact)
    );
    println!(
        "redactor time / cat time: {:.2}",
        redact.as_secs_f64() / cat.as_secs_f64()
    );
}

fn best_of(mut run: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .expect("RUNS > 0")
}

/// Bytes read back from `/bin/cat` while a thread writes `data` into it.
fn cat_through_pipe(data: &[u8]) -> usize {
    let mut child = Command::new("/bin/cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn /bin/cat");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let read = std::thread::scope(|s| {
        s.spawn(move || {
            for chunk in data.chunks(CHUNK) {
                stdin.write_all(chunk).expect("write to cat");
            }
            // Dropping stdin closes the pipe, so cat ends.
        });
        let mut buf = vec![0; CHUNK];
        let mut total = 0;
        loop {
            match stdout.read(&mut buf).expect("read from cat") {
                0 => break total,
                n => total += black_box(n),
            }
        }
    });
    child.wait().expect("wait for cat");
    read
}

/// Replacements made streaming `data` through a fresh stream, emptying the output after each
/// push as a writer would.
fn redact_in_pushes(redactor: &Arc<Redactor>, data: &[u8]) -> usize {
    let mut stream = redactor.stream();
    let mut out = Vec::with_capacity(2 * CHUNK);
    let mut count = 0;
    for chunk in data.chunks(CHUNK) {
        count += stream.push(chunk, &mut out);
        black_box(&out);
        out.clear();
    }
    count + stream.finish(&mut out)
}

/// About `size` bytes of log lines; returns them and how many secrets were printed.
fn log_output(rng: &mut Rng, size: usize, values: &[String]) -> (Vec<u8>, usize) {
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
fn token(rng: &mut Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
        .collect()
}

/// xorshift64: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
