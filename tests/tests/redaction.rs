//! Output redaction through the real binary: agents print their secrets in
//! the ways programs do (whole, split across writes, byte by byte, base64,
//! percent-encoded, JSON-escaped, a PEM key whole and line by line), and no
//! form of a value reaches the terminal, the run log or the state directory.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use supervisor_tests::{Run, Team};

const GITHUB_TOKEN: &str = "ghp_R8x2Lq9ZtW4vN7mK1pS3dF6hJ0yB5cXe8GuA";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY9q2s4t7u/Z";
const DB_PASSWORD: &str = r#"c0rrect"horse\battery/staple:42"#;
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIK3x9Qm7Ry2Lp4Wn8Tz1Vb6Hc0Jd5Fs3Ge9Ka2Mu7No4
Pq1Sr8Tt5Uv2Wx9Yz6Ab3Cd0Ef7Gh4Ij1Kl8Mn5Op2Qr9St6Uv3Wx0Yz7Ab4Cd1
-----END PRIVATE KEY-----";

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
    ("pem-whole", "TLS_KEY", r#"printf '%s\n' "$TLS_KEY""#),
    (
        "pem-lines",
        "TLS_KEY",
        r#"printf '%s\n' "$TLS_KEY" | while IFS= read -r line; do printf 'key line: %s\n' "$line" >&2; sleep 0.05; done"#,
    ),
];

/// Percent-encoding by Python's `urllib.parse`: `quote(v, safe="")`,
/// `quote_plus(v)` and plain `quote(v)`, which leaves `/` as it is.
const PYTHON_PERCENT: (&str, &str, &str) = (
    "percent-python",
    "AWS_SECRET_ACCESS_KEY",
    r#"/usr/bin/python3 -c 'import os, urllib.parse as u
v = os.environ["AWS_SECRET_ACCESS_KEY"]
print(u.quote(v, safe=""))
print(u.quote_plus(v))
print(u.quote(v))'"#,
);

fn agents_toml(forms: &[(&str, &str, &str)]) -> String {
    forms
        .iter()
        .map(|(name, _, script)| {
            format!(
                "[[agents]]\nname = \"{name}\"\ncommand = [\"/bin/sh\", \"-c\", '''{script}''']\ntimeout = \"20s\"\ntriggers = [\"cli\"]\nenv = {{ PATH = \"/usr/bin:/bin\" }}\n\n"
            )
        })
        .collect()
}

fn base64_forms(value: &[u8]) -> Vec<String> {
    // The characters of each alignment that carry `value`'s bits alone.
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

/// Every form of `value` that must never leave the supervisor.
fn forms_of(value: &str) -> Vec<String> {
    let mut sources = vec![value];
    if value.contains('\n') {
        sources.extend(value.lines().filter(|l| l.len() >= 6));
    }
    let mut out = Vec::new();
    for s in sources {
        out.push(s.to_owned());
        out.extend(base64_forms(s.as_bytes()));
        out.push(percent(s, true, ""));
        out.push(percent(s, false, ""));
        out.push(percent(s, true, "/"));
        let json = serde_json::to_string(s).unwrap();
        out.push(json[1..json.len() - 1].to_owned());
    }
    out.sort();
    out.dedup();
    out
}

fn all_forms() -> Vec<String> {
    [GITHUB_TOKEN, AWS_SECRET, DB_PASSWORD, TLS_KEY]
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
    team
}

#[track_caller]
fn assert_clean(what: &str, text: &str, forms: &[String]) {
    for f in forms {
        assert!(
            !text.contains(f.as_str()),
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
    assert_clean(&format!("{agent}: the terminal"), &run.all(), forms);

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
    let mut forms_run: Vec<(&str, &str, &str)> = FORMS.to_vec();
    if Path::new("/usr/bin/python3").exists() {
        forms_run.push(PYTHON_PERCENT);
    } else {
        eprintln!("note: no /usr/bin/python3; Python's percent-encoding is not tried");
    }
    let team = team_with_secrets(&forms_run);
    let forms = all_forms();

    for (agent, name, _) in &forms_run {
        let run = check_run(&team, agent, name, &forms);
        // Where the layout is plain, the whole output is pinned.
        let token = "token=[REDACTED:GITHUB_TOKEN]\n";
        let aws = "[REDACTED:AWS_SECRET_ACCESS_KEY]\n";
        let expected = match *agent {
            "whole-stdout" | "split-stdout" => Some((token.to_owned(), String::new())),
            "whole-stderr" | "split-stderr" => Some((String::new(), token.to_owned())),
            "bytewise" => Some(("[REDACTED:GITHUB_TOKEN]\n".to_owned(), String::new())),
            "json" => Some((
                "{\"password\":\"[REDACTED:DB_PASSWORD]\"}\n".to_owned(),
                String::new(),
            )),
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
