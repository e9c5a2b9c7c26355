//! The master key's rules: a wrong key, a loose key file and a missing key
//! are each named as such; `init` never replaces a key; systemd's
//! credentials directory is used when set.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use supervisor_tests::{Team, mode, run_with_input};

fn key_file(team: &Team) -> PathBuf {
    team.state_dir().join("master.key")
}

#[test]
fn a_wrong_key_is_named_as_such() {
    let team = Team::new("");
    team.secret(&["--team"], "BEFORE", "before-value");
    let key = key_file(&team);
    let original = std::fs::read(&key).unwrap();
    let other: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
    std::fs::write(&key, &other).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    for verb in ["create", "update"] {
        let out = team.cmd_in(
            "some-value-here",
            &["secret", verb, "--team", "--name", "BEFORE"],
        );
        let err = out.err();
        assert!(
            err.contains("error: this master key does not open this store"),
            "{out}"
        );
        assert!(err.contains("hint: "), "{out}");
        assert!(!err.contains("panicked"), "{out}");
    }
    let out = team.cmd(&["init"]);
    assert!(
        out.err()
            .contains("this master key does not open this store"),
        "{out}"
    );
    // Nothing was changed, and the right key still works.
    assert_eq!(std::fs::read(&key).unwrap(), other);
    std::fs::write(&key, &original).unwrap();
    team.secret(&["--team"], "AFTER", "after-value");
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let team = Team::new("");
    let key = key_file(&team);
    for loose in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(loose)).unwrap();
        let out = team.cmd_in(
            "some-value-here",
            &["secret", "create", "--team", "--name", "X"],
        );
        let err = out.err();
        assert!(
            err.contains(&format!(
                "permissions {loose:04o} for {} are too open",
                key.display()
            )),
            "{out}"
        );
        assert!(
            err.contains(&format!("chmod 600 {}", key.display())),
            "{out}"
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    team.secret(&["--team"], "X", "some-value-here");
    // Stricter than 0600 is fine.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    team.secret(&["--team"], "Y", "some-value-here");
}

#[test]
fn a_missing_key_says_how_to_init_and_init_keeps_the_old_store_safe() {
    let team = Team::uninitialised("");
    let key = key_file(&team);
    // Before init: no key, no store.
    let out = team.cmd_in(
        "some-value-here",
        &["secret", "create", "--team", "--name", "X"],
    );
    assert!(
        out.err()
            .contains(&format!("error: no master key at {}", key.display())),
        "{out}"
    );
    assert!(out.stderr.contains("hint: run `supervisor init`"), "{out}");
    let out = team.cmd(&["secret", "list"]);
    assert!(out.err().contains("run `supervisor init`"), "{out}");

    team.cmd(&["init"]).ok();
    team.secret(&["--team"], "X", "some-value-here");

    // The key is lost: say so, and do not let init replace it, since a new
    // key could never open what is stored.
    std::fs::remove_file(&key).unwrap();
    let out = team.cmd_in(
        "some-value-here",
        &["secret", "create", "--team", "--name", "Y"],
    );
    assert!(out.err().contains("no master key at"), "{out}");
    assert!(out.stderr.contains("hint: run `supervisor init`"), "{out}");
    let out = team.cmd(&["init"]);
    let err = out.err();
    assert!(err.contains("exists, but its master key"), "{out}");
    assert!(err.contains("restore the key from your backup"), "{out}");
    assert!(!key.exists(), "init wrote a key that cannot open the store");
}

#[test]
fn init_twice_keeps_the_key() {
    let team = Team::new("");
    let key = key_file(&team);
    let before = std::fs::read(&key).unwrap();
    team.secret(&["--team"], "KEEP", "kept-value-1");
    let out = team.cmd(&["init"]);
    assert!(
        out.ok().contains(&format!(
            "using the existing master key at {}",
            key.display()
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert_eq!(mode(&key), 0o600);
    let list = team.cmd(&["secret", "list", "--json"]).json();
    assert_eq!(list[0]["name"], "KEEP");
    team.cmd_in(
        "kept-value-2",
        &["secret", "update", "--team", "--name", "KEEP"],
    )
    .ok();
}

#[test]
fn the_key_is_taken_from_the_credentials_directory_when_set() {
    let team = Team::new("");
    let key = key_file(&team);
    let creds = team.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let credential = creds.join("master.key");
    std::fs::copy(&key, &credential).unwrap();
    // systemd presents credentials read-only to the service.
    std::fs::set_permissions(&credential, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::remove_file(&key).unwrap();

    let with_creds = |input: &str, args: &[&str]| {
        let mut cmd = team.command(args);
        cmd.env("CREDENTIALS_DIRECTORY", &creds);
        run_with_input(cmd, input.as_bytes())
    };
    with_creds(
        "from-credentials",
        &["secret", "create", "--team", "--name", "VIA_CREDENTIAL"],
    )
    .ok();
    with_creds(
        "from-credentials-2",
        &["secret", "update", "--team", "--name", "VIA_CREDENTIAL"],
    )
    .ok();
    let out = with_creds("", &["init"]);
    assert!(
        out.ok().contains(&format!(
            "using the existing master key at {}",
            credential.display()
        )),
        "{out}"
    );
    assert!(
        !key.exists(),
        "init must not write a key file beside the credential"
    );
    // Without the variable, the key file is looked for and is missing.
    let out = team.cmd_in(
        "value-value",
        &["secret", "create", "--team", "--name", "NO"],
    );
    assert!(out.err().contains("no master key at"), "{out}");
}
