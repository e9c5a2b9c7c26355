//! How a value comes in (`--value-file` or stdin, byte for byte) and which
//! values are refused: empty, over 64 KiB, NUL bytes, not UTF-8. Messages
//! describe the value's shape, never its content.

use serde_json::Value;
use supervisor_tests::{Team, run_with_input, sentinel};

/// Runs `secret create --team --name NAME --value-file FILE` with `bytes` in FILE.
fn create_from_file(team: &Team, name: &str, bytes: &[u8]) -> supervisor_tests::Run {
    let file = team.path().join(format!("{name}.value"));
    std::fs::write(&file, bytes).unwrap();
    team.cmd(&[
        "secret",
        "create",
        "--team",
        "--name",
        name,
        "--value-file",
        file.to_str().unwrap(),
    ])
}

#[test]
fn value_file_bytes_are_taken_exactly() {
    let team = Team::new("");
    // Values under six bytes draw a warning that states their length: it
    // shows that a trailing newline (or CR LF) is kept, not stripped.
    for (name, bytes, len) in [
        ("NO_NEWLINE", &b"abc"[..], 3),
        ("WITH_NEWLINE", b"abc\n", 4),
        ("WITH_CRLF", b"ab\r\n", 4),
    ] {
        let out = create_from_file(&team, name, bytes);
        out.ok();
        assert!(
            out.stderr.contains(&format!(
                "warning: {name} is {len} byte(s) long; values shorter than 6 bytes are not redacted"
            )),
            "{out}"
        );
    }
    // A longer value draws no length warning.
    let out = create_from_file(&team, "LONG_ENOUGH", b"abcdefgh");
    out.ok();
    assert!(!out.stderr.contains("warning"), "{out}");

    // Stdin is taken exactly too.
    let out = team.cmd_in(
        "ab\n",
        &["secret", "create", "--team", "--name", "FROM_STDIN"],
    );
    out.ok();
    assert!(out.stderr.contains("FROM_STDIN is 3 byte(s) long"), "{out}");

    // A value file that does not exist is named.
    let out = team.cmd(&[
        "secret",
        "create",
        "--team",
        "--name",
        "MISSING",
        "--value-file",
        "no-such.value",
    ]);
    assert!(out.err().contains("no-such.value"), "{out}");
}

/// `echo value | secret create` stores `value\n`, which breaks an API
/// token: the line break is kept (bytes are never changed silently) and
/// said, with how many bytes and how to avoid it; --strip-newline removes
/// it, and says so.
#[test]
fn a_line_break_at_the_end_is_said_and_stripped_only_when_asked() {
    let team = Team::new(
        r#"
[[agents]]
name = "length"
command = ["/bin/sh", "-c", "for n in LF CRLF FILE STRIPPED PLAIN; do eval \"v=\\$$n\"; printf '%s=%s\\n' $n ${#v}; done"]
"#,
    );
    let create = |input: &str, name: &str, extra: &[&str]| {
        let mut args = vec!["secret", "create", "--team", "--name", name];
        args.extend_from_slice(extra);
        team.cmd_in(input, &args)
    };
    let out = create("token-1234\n", "LF", &[]);
    out.ok();
    assert!(
        out.stderr.contains(
            "warning: the value from standard input ends with a line break (1 byte: LF); it is stored as is, and agents receive it"
        ),
        "{out}"
    );
    assert!(out.stderr.contains("--strip-newline"), "{out}");
    assert!(out.stderr.contains("printf %s"), "{out}");
    let out = create("token-1234\r\n", "CRLF", &[]);
    assert!(out.stderr.contains("(2 bytes: CR LF)"), "{out}");

    let file = team.path().join("value");
    std::fs::write(&file, "token-1234\n").unwrap();
    let out = create("", "FILE", &["--value-file", file.to_str().unwrap()]);
    assert!(
        out.stderr.contains(&format!(
            "warning: the value from {} ends with a line break (1 byte: LF)",
            file.display()
        )),
        "{out}"
    );

    let out = create("token-1234\r\n", "STRIPPED", &["--strip-newline"]);
    out.ok();
    assert!(!out.stderr.contains("warning"), "{out}");
    assert!(
        out.stderr.contains(
            "note: removed the line break at the end of the value from standard input (2 bytes: CR LF), as --strip-newline asks"
        ),
        "{out}"
    );
    let out = create("token-1234", "PLAIN", &[]);
    assert!(out.stderr.is_empty(), "{out}");
    assert!(!team.cmd(&["secret", "list"]).all().contains("token-1234"));

    // What the agent receives: the bytes as stored.
    let run = team.cmd(&["run", "length"]);
    assert_eq!(
        run.ok(),
        "LF=11\nCRLF=12\nFILE=11\nSTRIPPED=10\nPLAIN=10\n",
        "{run}"
    );
}

#[test]
fn a_four_byte_value_warns_that_it_is_not_redacted() {
    let team = Team::new("");
    let out = team.cmd_in("abcd", &["secret", "create", "--team", "--name", "PIN"]);
    out.ok();
    assert!(
        out.stderr.contains(
            "warning: PIN is 4 byte(s) long; values shorter than 6 bytes are not redacted from agent output"
        ),
        "{out}"
    );
    assert!(!out.stdout.contains("warning"), "diagnostics go to stderr");
    assert!(!out.all().contains("abcd"));
}

#[test]
fn non_utf8_values_are_refused_without_echo() {
    let team = Team::new("");
    let secret = sentinel("binary");
    let mut bytes = secret.clone().into_bytes();
    bytes.extend_from_slice(b"\xff\xfe-tail");
    let offset = secret.len();

    let out = create_from_file(&team, "FROM_FILE", &bytes);
    let err = out.err();
    assert!(
        err.contains(&format!("not UTF-8 text (invalid byte at offset {offset})")),
        "{out}"
    );
    assert!(err.contains("base64"), "the hint says what to do:\n{out}");
    assert!(!out.all().contains(&secret) && !out.all().contains("-tail"));

    let out = run_with_input(
        team.command(&["secret", "create", "--team", "--name", "FROM_STDIN"]),
        &bytes,
    );
    assert!(out.err().contains("not UTF-8"), "{out}");
    assert!(!out.all().contains(&secret));

    assert_eq!(
        team.cmd(&["secret", "list", "--json"]).json(),
        Value::Array(vec![])
    );
}

#[test]
fn empty_oversized_and_nul_values_are_refused() {
    let team = Team::new("");
    let create = |input: &[u8], name: &str| {
        run_with_input(
            team.command(&["secret", "create", "--team", "--name", name]),
            input,
        )
    };

    let out = create(b"", "EMPTY");
    assert!(out.err().contains("the value is empty"), "{out}");
    let out = create_from_file(&team, "EMPTY_FILE", b"");
    assert!(out.err().contains("the value is empty"), "{out}");

    let limit = 64 * 1024;
    create(&vec![b'a'; limit], "AT_LIMIT").ok();
    create_from_file(&team, "AT_LIMIT_FILE", &vec![b'b'; limit]).ok();
    let out = create(&vec![b'a'; limit + 1], "OVER_LIMIT");
    assert!(
        out.err()
            .contains("the value is 65537 bytes; the limit is 65536 bytes (64 KiB)"),
        "{out}"
    );
    let out = create_from_file(&team, "OVER_LIMIT_FILE", &vec![b'b'; limit + 1]);
    assert!(
        out.err()
            .contains("is 65537 bytes; a value is at most 65536 bytes"),
        "{out}"
    );

    let secret = sentinel("nul");
    let mut with_nul = secret.clone().into_bytes();
    with_nul.insert(4, 0);
    let out = create(&with_nul, "WITH_NUL");
    assert!(
        out.err().contains("the value holds a NUL byte (at byte 4)"),
        "{out}"
    );
    assert!(!out.all().contains(&secret[4..]));
    let out = create_from_file(&team, "WITH_NUL_FILE", &with_nul);
    assert!(out.err().contains("NUL byte"), "{out}");

    let list = team.cmd(&["secret", "list", "--json"]).json();
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["AT_LIMIT", "AT_LIMIT_FILE"]);
}
