//! The command line itself: completions and help.

use std::process::Command;

use supervisor_tests::{Team, binary, run_with_input};

/// The binary with `args` and no config: completions need none.
fn supervisor(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("SUPERVISOR_CONFIG");
    cmd
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_with_input(supervisor(&["completions", shell]), b"");
        let script = out.ok();
        assert!(script.len() > 200, "{shell}: {out}");
        assert!(script.contains("supervisor"), "{shell}: {out}");
        // Subcommands are completed too.
        assert!(script.contains("secret"), "{shell}: {out}");
    }
    let out = run_with_input(supervisor(&["completions", "tcsh"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn create_help_says_where_the_value_comes_from() {
    let team = Team::uninitialised("");
    let out = team.cmd(&["secret", "create", "--help"]);
    let help = out.ok();
    for want in [
        "--value-file",
        "hidden prompt",
        "standard input",
        "No flag takes the value itself",
        "--team",
        "--personal",
    ] {
        assert!(help.contains(want), "missing {want:?}:\n{help}");
    }
    // No flag could take a value on the command line.
    assert!(!help.contains("--value "), "{help}");
}
