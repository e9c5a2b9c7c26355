//! Output redaction through the real binary: agents print their secrets in the ways programs
//! do (whole, split across writes, byte by byte, split across stdout and stderr, base64
//! wrapped or not, hex, percent-encoded, JSON-escaped by serde and by Python, with colour
//! codes inside, trimmed, a PEM key whole and line by line), and no form of a value reaches
//! the terminal, the run log or the state directory, with line breaks and escape sequences
//! taken out before looking.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use supervisor_tests::{Run, Team, run_with_input};

const GITHUB_TOKEN: &str = "ghp_R8x2Lq9ZtW4vN7mK1pS3dF6hJ0yB5cXe8GuA";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY9q2s4t7u/Z";
const DB_PASSWORD: &str = r#"c0rrect"horse\battery/staple:42"#;
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIK3x9Qm7Ry2Lp4Wn8Tz1Vb6Hc0Jd5Fs3Ge9Ka2Mu7No4
Pq1Sr8Tt5Uv2Wx9Yz6Ab3Cd0Ef7Gh4Ij1Kl8Mn5Op2Qr9St6Uv3Wx0Yz7Ab4Cd1
-----END PRIVATE KEY-----";
/// 100 bytes: its base64 is wrapped by `base64` (76 columns) and Python's `encodebytes`.
const LONG_TOKEN: &str = "lt_9Hq2Wv7Xc4Rb8Nm1Ks5Dj3Fg6Lp0Zt2Yu8Ie4Oa7Sw1Qx9Ed3Rf6Tg5Hy2Uj8Ik4Ol7Pm1Nb3Vc6Xz9As2Dq5We8Rt0Yu7Io3";
/// Non-ASCII: Python's `json.dumps` writes it with `\u` escapes.
const UNICODE_PW: &str = "pässwörd-ünïcode-42";
/// Stored with spaces and a newline around it; programs print it trimmed.
const PADDED: &str = "  padded-token-0123456789  \n";

/// (agent, the secret whose placeholder must show, script).
const FORMS: &[(&str, &str, &str)] = &[
    (
        "whole-stdout",
        "GITHUB_TOKEN",
        r#"printf 'token=%s\n' "$GITHUB_TOKEN""#,
    ),
    (
        "whole-stderr",
        "GITHUB_TOKEN",
        r#"printf 'token=%s\n' "$GITHUB_TOKEN" >&2"#,
    ),
    (
        "split-stdout",
        "GITHUB_TOKEN",
        r#"printf 'token=%s' "$(printf %s "$GITHUB_TOKEN" | cut -c1-20)"; sleep 0.2; printf '%s\n' "$(printf %s "$GITHUB_TOKEN" | cut -c21-)""#,
    ),
    (
        "split-stderr",
        "GITHUB_TOKEN",
        r#"printf 'token=%s' "$(printf %s "$GITHUB_TOKEN" | cut -c1-7)" >&2; sleep 0.2; printf '%s\n' "$(printf %s "$GITHUB_TOKEN" | cut -c8-)" >&2"#,
    ),
    (
        // The first 16 bytes on stdout, which then closes; the rest on stderr.
        "stream-split",
        "GITHUB_TOKEN",
        r#"printf %s "$(printf %s "$GITHUB_TOKEN" | cut -c1-16)"; exec 1>&-; sleep 0.2; printf '%s\n' "$(printf %s "$GITHUB_TOKEN" | cut -c17-)" >&2"#,
    ),
    (
        "bytewise",
        "GITHUB_TOKEN",
        r#"printf '%s\n' "$GITHUB_TOKEN" | fold -w1 | while IFS= read -r c; do printf %s "$c"; sleep 0.01; done; echo"#,
    ),
    (
        "base64",
        "AWS_SECRET_ACCESS_KEY",
        r#"printf %s "$AWS_SECRET_ACCESS_KEY" | base64"#,
    ),
    (
        "base64-blob",
        "AWS_SECRET_ACCESS_KEY",
        r#"for p in '' x xy; do
             blob="$(printf '%s%s and then a longer tail of ordinary context' "$p" "$AWS_SECRET_ACCESS_KEY")"
             printf %s "$blob" | base64 -w0; echo
             printf %s "$blob" | base64 -w0 | tr '+/' '-_'; echo
           done"#,
    ),
    (
        "base64-wrapped",
        "LONG_TOKEN",
        r#"printf %s "$LONG_TOKEN" | base64
           printf %s "$LONG_TOKEN" | base64 -w 64 | sed 's/$/\r/'
           printf 'user:%s' "$LONG_TOKEN" | base64 -w 20"#,
    ),
    (
        "hex",
        "GITHUB_TOKEN",
        r#"printf %s "$GITHUB_TOKEN" | xxd -p
           printf %s "$GITHUB_TOKEN" | od -An -tx1
           printf %s "$GITHUB_TOKEN" | od -An -tx1 | tr a-f A-F"#,
    ),
    (
        "percent-shell",
        "AWS_SECRET_ACCESS_KEY",
        r#"for fmt in %%%02X %%%02x; do
             printf '%s\n' "$AWS_SECRET_ACCESS_KEY" | fold -w1 | while IFS= read -r c; do
               case "$c" in [A-Za-z0-9._~-]) printf %s "$c";; *) printf "$fmt" "'$c";; esac
             done; echo
           done"#,
    ),
    (
        "json",
        "DB_PASSWORD",
        r#"printf '{"password":"%s"}\n' "$(printf %s "$DB_PASSWORD" | sed 's/\\/\\\\/g; s/"/\\"/g')""#,
    ),
    (
        "ansi",
        "GITHUB_TOKEN",
        r#"printf '%s\033[1;31m%s\033[0m\n' "$(printf %s "$GITHUB_TOKEN" | cut -c1-10)" "$(printf %s "$GITHUB_TOKEN" | cut -c11-)"
           printf '%s\n' "$GITHUB_TOKEN" | grep --color=always 'R8x2'"#,
    ),
    ("trimmed", "PADDED", r#"printf 'token=%s.\n' $PADDED"#),
    ("pem-whole", "TLS_KEY", r#"printf '%s\n' "$TLS_KEY""#),
    (
        "pem-lines",
        "TLS_KEY",
        r#"printf '%s\n' "$TLS_KEY" | while IFS= read -r line; do printf 'key line: %s\n' "$line" >&2; sleep 0.05; done"#,
    ),
];

/// Python's encoders: percent-encoding by `urllib.parse` (`quote(v, safe="")`, `quote_plus(v)`
/// and plain `quote(v)`, which leaves `/`), `json.dumps` (`\u` escapes), `.hex()` and
/// `base64.encodebytes` (wrapped at 76).
const PYTHON: &[(&str, &str, &str)] = &[
    (
        "percent-python",
        "AWS_SECRET_ACCESS_KEY",
        r#"/usr/bin/python3 -c 'import os, urllib.parse as u
v = os.environ["AWS_SECRET_ACCESS_KEY"]
print(u.quote(v, safe=""))
print(u.quote_plus(v))
print(u.quote(v))'"#,
    ),
    (
        "json-python",
        "UNICODE_PW",
        r#"/usr/bin/python3 -c 'import os, json; print(json.dumps({"pw": os.environ["UNICODE_PW"]}))'"#,
    ),
    (
        "hex-python",
        "GITHUB_TOKEN",
        r#"/usr/bin/python3 -c 'import os
v = os.environ["GITHUB_TOKEN"].encode()
print(v.hex()); print(v.hex(":")); print(v.hex(" ").upper())'"#,
    ),
    (
        "base64-python",
        "LONG_TOKEN",
        r#"/usr/bin/python3 -c 'import os, base64, sys
sys.stdout.write(base64.encodebytes(os.environ["LONG_TOKEN"].encode()).decode())'"#,
    ),
];

fn agents_toml(forms: &[(&str, &str, &str)]) -> String {
    forms
        .iter()
        .map(|(name, _, script)| {
            format!(
                "[[agents]]\nname = \"{name}\"\ncommand = [\"/bin/sh\", \"-c\", '''{script}''']\ntimeout = \"20s\"\ntriggers = [\"cli\"]\nenv = {{ PATH = \"/usr/bin:/bin\", LANG = \"C.UTF-8\" }}\n\n"
            )
        })
        .collect()
}

/// The characters of each alignment that carry `value`'s bits alone.
fn base64_forms(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for align in 0..3 {
        let mut shifted = vec![0u8; align];
        shifted.extend_from_slice(value);
        let first = (8 * align).div_ceil(6);
        let end = 8 * shifted.len() / 6;
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            out.push(engine.encode(&shifted)[first..end].to_owned());
        }
    }
    out
}

fn percent(value: &str, hex_upper: bool, keep: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
                (b as char).to_string()
            } else if hex_upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

fn hex(value: &str, sep: &str, upper: bool) -> String {
    let parts: Vec<String> = value
        .bytes()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect();
    parts.join(sep)
}

/// Every form of `value` that must never leave the supervisor.
fn forms_of(value: &str) -> Vec<String> {
    let mut sources = vec![value, value.trim()];
    if value.contains('\n') {
        sources.extend(value.lines().filter(|l| l.len() >= 6));
    }
    let mut out = Vec::new();
    for s in sources {
        out.push(s.to_owned());
        out.extend(base64_forms(s.as_bytes()));
        out.push(STANDARD.encode(s));
        out.push(percent(s, true, ""));
        out.push(percent(s, false, ""));
        out.push(percent(s, true, "/"));
        for (sep, upper) in [("", false), ("", true), (":", false), (" ", true)] {
            out.push(hex(s, sep, upper));
        }
        let json = serde_json::to_string(s).unwrap();
        out.push(json[1..json.len() - 1].to_owned());
        let ascii: String = s
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect();
        out.push(ascii);
    }
    out.retain(|f| f.len() >= 6);
    out.sort();
    out.dedup();
    out
}

fn all_forms() -> Vec<String> {
    [
        GITHUB_TOKEN,
        AWS_SECRET,
        DB_PASSWORD,
        TLS_KEY,
        LONG_TOKEN,
        UNICODE_PW,
        PADDED,
    ]
    .into_iter()
    .flat_map(forms_of)
    .collect()
}

fn team_with_secrets(forms: &[(&str, &str, &str)]) -> Team {
    let mut extra = agents_toml(forms);
    extra.push_str(
        "[[agents]]\nname = \"quiet\"\ncommand = [\"/bin/true\"]\ntriggers = [\"cli\"]\n",
    );
    let team = Team::new(&extra);
    team.secret(&["--team"], "GITHUB_TOKEN", GITHUB_TOKEN);
    team.secret(&["--team"], "AWS_SECRET_ACCESS_KEY", AWS_SECRET);
    team.secret(&["--personal"], "DB_PASSWORD", DB_PASSWORD);
    team.secret(&["--team"], "TLS_KEY", TLS_KEY);
    team.secret(&["--team"], "LONG_TOKEN", LONG_TOKEN);
    team.secret(&["--team"], "UNICODE_PW", UNICODE_PW);
    team.secret(&["--team"], "PADDED", PADDED);
    team
}

/// What the redactor reads: line breaks and terminal escape sequences taken out.
fn view(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\r' => {}
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[track_caller]
fn assert_clean(what: &str, text: &str, forms: &[String]) {
    let seen = view(text);
    for f in forms {
        assert!(
            !text.contains(f.as_str()) && !seen.contains(f.as_str()),
            "{what} holds a secret form `{f}`:\n{text}"
        );
    }
}

/// Runs `agent`, checks its terminal output and log, returns the terminal output.
#[track_caller]
fn check_run(team: &Team, agent: &str, name: &str, forms: &[String]) -> Run {
    let run = team.cmd(&["run", agent]);
    run.ok();
    let placeholder = format!("[REDACTED:{name}]");
    assert!(
        run.all().contains(&placeholder),
        "{agent}: no {placeholder}:\n{run}"
    );
    assert_clean(&format!("{agent}: stdout"), &run.stdout, forms);
    assert_clean(&format!("{agent}: stderr"), &run.stderr, forms);

    let record = team.last_run();
    assert_eq!(record["agent"], agent);
    assert!(
        record["redactions"].as_u64().unwrap() > 0,
        "{agent}: {record}"
    );
    let log = team.cmd(&["runs", "logs", record["id"].as_str().unwrap()]);
    assert!(
        log.ok().contains(&placeholder),
        "{agent}: log without {placeholder}:\n{log}"
    );
    assert_clean(&format!("{agent}: the run log"), &log.stdout, forms);
    run
}

#[test]
fn no_form_of_a_value_reaches_the_terminal_the_log_or_the_state() {
    assert_eq!(GITHUB_TOKEN.len(), 40);
    assert_eq!(LONG_TOKEN.len(), 100);
    let mut forms_run: Vec<(&str, &str, &str)> = FORMS.to_vec();
    if Path::new("/usr/bin/python3").exists() {
        forms_run.extend_from_slice(PYTHON);
    } else {
        eprintln!("note: no /usr/bin/python3; Python's encoders are not tried");
    }
    let team = team_with_secrets(&forms_run);
    let forms = all_forms();

    for (agent, name, _) in &forms_run {
        let run = check_run(&team, agent, name, &forms);
        // Where the layout is plain, the whole output is pinned: nothing beside a placeholder
        // (not even a base64 character or padding) depends on the value.
        let token = "token=[REDACTED:GITHUB_TOKEN]\n";
        let gh = "[REDACTED:GITHUB_TOKEN]";
        let aws = "[REDACTED:AWS_SECRET_ACCESS_KEY]\n";
        let long = "[REDACTED:LONG_TOKEN]";
        let expected = match *agent {
            "whole-stdout" | "split-stdout" => Some((token.to_owned(), String::new())),
            "whole-stderr" | "split-stderr" => Some((String::new(), token.to_owned())),
            "stream-split" => Some((gh.to_owned(), format!("{gh}\n"))),
            "bytewise" => Some((format!("{gh}\n"), String::new())),
            "base64" => Some((aws.to_owned(), String::new())),
            "base64-wrapped" => Some((
                // `user:` encodes to 6 characters of its own ("dXNlcj").
                format!("{long}\n{long}\r\ndXNlcj{long}\n"),
                String::new(),
            )),
            "base64-python" => Some((format!("{long}\n"), String::new())),
            // `od` starts each line with a space.
            "hex" => Some((format!("{gh}\n {gh}\n {gh}\n"), String::new())),
            "hex-python" => Some((format!("{gh}\n").repeat(3), String::new())),
            "json" => Some((
                "{\"password\":\"[REDACTED:DB_PASSWORD]\"}\n".to_owned(),
                String::new(),
            )),
            "json-python" => Some((
                "{\"pw\": \"[REDACTED:UNICODE_PW]\"}\n".to_owned(),
                String::new(),
            )),
            "ansi" => Some((format!("{gh}\x1b[0m\n{gh}\n"), String::new())),
            "trimmed" => Some(("token=[REDACTED:PADDED].\n".to_owned(), String::new())),
            "pem-whole" => Some(("[REDACTED:TLS_KEY]\n".to_owned(), String::new())),
            "pem-lines" => Some((String::new(), "key line: [REDACTED:TLS_KEY]\n".repeat(4))),
            "percent-shell" => Some((aws.repeat(2), String::new())),
            "percent-python" => Some((aws.repeat(3), String::new())),
            _ => None,
        };
        if let Some((stdout, stderr)) = expected {
            assert_eq!((run.stdout, run.stderr), (stdout, stderr), "{agent}");
        }
    }

    for f in &forms {
        team.assert_not_in_state(f);
    }
}

#[test]
fn a_value_split_across_stdout_and_stderr_is_clean_in_the_log_and_a_joined_terminal() {
    let team = team_with_secrets(FORMS);
    let (first, rest) = GITHUB_TOKEN.split_at(16);
    // A terminal showing both streams as one, as `2>&1` makes it.
    let mut joined = std::process::Command::new("/bin/sh");
    joined
        .arg("-c")
        .arg("exec \"$0\" --config \"$1\" run stream-split 2>&1")
        .arg(supervisor_tests::binary())
        .arg(team.path().join("supervisor.toml"))
        .current_dir(team.path())
        .env_remove("SUPERVISOR_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY");
    let terminal = run_with_input(joined, b"");
    assert_eq!(terminal.code, Some(0), "{terminal}");
    let record = team.last_run();
    let log = team.cmd(&["runs", "logs", record["id"].as_str().unwrap()]);
    for (what, text) in [("the terminal", &terminal.stdout), ("the log", &log.stdout)] {
        assert!(text.contains("[REDACTED:GITHUB_TOKEN]"), "{what}: {text}");
        for piece in [first, rest, GITHUB_TOKEN] {
            assert!(!text.contains(piece), "{what} holds `{piece}`: {text}");
        }
    }
}

#[test]
fn a_prompt_is_redacted_before_it_is_cut_for_the_run_record() {
    let team = team_with_secrets(&[]);
    // The value straddles the 1,024 bytes the record keeps.
    let prompt = format!("{}{GITHUB_TOKEN} and more", "x".repeat(1010));
    team.cmd(&["run", "quiet", "--prompt", &prompt]).ok();
    let record = team.last_run();
    let kept = record["detail"]["prompt"].as_str().unwrap();
    assert!(kept.starts_with(&"x".repeat(1010)), "{kept}");
    assert!(kept.chars().count() <= 1025, "{}", kept.len());
    for n in 4..=GITHUB_TOKEN.len() {
        assert!(
            !kept.contains(&GITHUB_TOKEN[..n]),
            "the record keeps the first {n} bytes of the value: {kept}"
        );
    }
    team.assert_not_in_state(&GITHUB_TOKEN[..14]);
}

#[test]
fn the_quick_start_demo_shows_nothing_after_the_marker() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agents/show-env.sh");
    let agent = format!(
        "[[agents]]\nname = \"show-env\"\ncommand = [\"/bin/sh\", \"{}\"]\ntriggers = [\"cli\"]\n",
        script.display()
    );
    let team = Team::new(&agent);
    // Values as the quick start makes them ("demo-" and 24 hex digits), and one byte
    // shorter and longer, so that every partial last base64 quantum is tried.
    for (i, digits) in [24, 24, 24, 23, 25].into_iter().enumerate() {
        let value = format!("demo-{}", &supervisor_tests::sentinel("x")[2..2 + 16]);
        let value = format!("{value}{}", &"0123456789abcdef"[..digits - 16]);
        let verb = if i == 0 { "create" } else { "update" };
        team.cmd_in(
            &value,
            &["secret", verb, "--team", "--name", "DEMO_API_TOKEN"],
        )
        .ok();
        let run = team.cmd(&["run", "show-env"]);
        let lines: Vec<&str> = run.ok().lines().collect();
        assert!(
            lines.contains(&"plain:   [REDACTED:DEMO_API_TOKEN]"),
            "{run}"
        );
        assert!(
            lines.contains(&"base64:  [REDACTED:DEMO_API_TOKEN]"),
            "{run}"
        );
    }
}

#[test]
fn a_busy_agent_s_output_arrives_whole_and_clean() {
    // Past 4 MiB the sinks get a thread of their own; nothing may be lost or reordered
    // across that switch, in the log or on the terminal.
    let script = r#"yes 'a line of ordinary output, long enough to fill pipes' | head -c 5000000
printf 'tok=%s\n' "$GITHUB_TOKEN"
yes 'more output' | head -c 3000000
printf 'tok=%s\n' "$GITHUB_TOKEN" >&2
printf 'tok=%s\n' "$GITHUB_TOKEN""#;
    let team = team_with_secrets(&[("busy", "GITHUB_TOKEN", script)]);
    let run = team.cmd(&["run", "busy"]);
    let expected: String = {
        let line = "a line of ordinary output, long enough to fill pipes\n";
        let first: String = line.repeat(5_000_000 / line.len() + 1)[..5_000_000].to_owned();
        let more = "more output\n".repeat(3_000_000 / 12 + 1)[..3_000_000].to_owned();
        format!("{first}tok=[REDACTED:GITHUB_TOKEN]\n{more}tok=[REDACTED:GITHUB_TOKEN]\n")
    };
    assert!(
        run.ok() == expected,
        "stdout differs ({} bytes)",
        run.stdout.len()
    );
    assert_eq!(run.stderr, "tok=[REDACTED:GITHUB_TOKEN]\n");
    let record = team.last_run();
    assert_eq!(record["redactions"], 3);
    let log = team.cmd(&["runs", "logs", record["id"].as_str().unwrap()]);
    assert_eq!(
        log.ok().len(),
        expected.len() + "tok=[REDACTED:GITHUB_TOKEN]\n".len()
    );
    assert!(!log.stdout.contains(GITHUB_TOKEN));
}

#[test]
fn a_value_too_short_to_redact_is_named_in_the_record() {
    let team = team_with_secrets(&[]);
    team.secret(&["--team"], "SHORT_PIN", "4921");
    team.cmd(&["run", "quiet"]).ok();
    let record = team.last_run();
    assert_eq!(
        record["detail"]["not_redacted"],
        serde_json::json!(["SHORT_PIN"])
    );
    let id = record["id"].as_str().unwrap();
    let shown = team.cmd(&["runs", "show", id]);
    let line = shown
        .ok()
        .lines()
        .find(|l| l.starts_with("too short to redact"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(line.ends_with("SHORT_PIN"), "{line}");
}
