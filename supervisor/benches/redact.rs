//! Throughput of the output redactor in process, against `cat` through a pipe, on log-like
//! output (a secret on one line in 2,000) with 100 secrets: one stream alone
//! (`RedactStream`), and a run's two streams with everything on stdout (`Output`: the stream
//! stages and both stages where streams meet).
//!
//! Run with `cargo bench -p supervisor --bench redact`; `REDACT_BENCH_MB` sets the output size
//! in MiB (default 200) for a quicker run.

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use supervisor::redact::{Redactor, Stream};

use common::{Rng, SECRETS, log_output, values};

/// Size of each push, like one read from the agent's pipe.
const CHUNK: usize = 64 * 1024;
/// Each measurement is the best of this many runs, to shed scheduler noise.
const RUNS: usize = 3;

fn main() {
    let mib: usize = std::env::var("REDACT_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values = values(&mut rng);
    let secrets: Vec<(String, SecretString)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("SECRET_{i:03}"), SecretString::from(v.as_str())))
        .collect();
    let start = Instant::now();
    let redactor = Arc::new(Redactor::new(
        secrets.iter().map(|(name, value)| (name.as_str(), value)),
    ));
    let build = start.elapsed();
    let (output, planted) = log_output(&mut rng, mib << 20, &values);

    let cat = best_of(|| {
        assert_eq!(cat_through_pipe(&output), output.len());
    });
    let mut replacements = 0;
    let stream = best_of(|| replacements = redact_in_pushes(&redactor, &output));
    assert_eq!(replacements, planted, "every planted secret is redacted");
    let both = best_of(|| replacements = redact_both_streams(&redactor, &output));
    assert_eq!(replacements, planted, "every planted secret is redacted");

    let rate = |d: Duration| output.len() as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{mib} MiB of log output, {SECRETS} secrets (redactor built in {:.1} ms), {} KiB pushes, best of {RUNS}",
        build.as_secs_f64() * 1e3,
        CHUNK / 1024
    );
    println!("cat through a pipe:            {:8.0} MB/s", rate(cat));
    println!(
        "one stream (RedactStream):     {:8.0} MB/s ({replacements} replacements)",
        rate(stream)
    );
    println!("both streams (Output):         {:8.0} MB/s", rate(both));
    println!(
        "Output time / cat time: {:.2}",
        both.as_secs_f64() / cat.as_secs_f64()
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

/// Replacements made by a run's [`supervisor::redact::Output`] with `data` on stdout.
fn redact_both_streams(redactor: &Arc<Redactor>, data: &[u8]) -> usize {
    let mut output = redactor.output();
    let mut sink = |_: Stream, b: &[u8]| {
        black_box(b);
    };
    for chunk in data.chunks(CHUNK) {
        output.push(Stream::Stdout, chunk, &mut sink);
    }
    output.close(Stream::Stdout, &mut sink);
    output.close(Stream::Stderr, &mut sink);
    output.hits().iter().sum::<u64>() as usize
}
