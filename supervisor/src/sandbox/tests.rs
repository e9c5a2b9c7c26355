//! The containment decision for each kind of host and agent.

use std::path::{Path, PathBuf};

use supervisor_config::Config;

use super::*;

fn config(agents: &str) -> Config {
    let text = format!("[team]\nname = \"t\"\n{agents}");
    Config::parse(&text, Path::new("/etc/supervisor/supervisor.toml")).unwrap()
}

/// A host as root with everything, or stripped of the named facilities.
fn host(euid: u32, mount: bool, landlock: bool) -> Host {
    Host {
        cgroups: Cgroups::Unavailable("no cgroup v2 file system is mounted".into()),
        landlock: landlock.then_some(7),
        namespaces: NamespaceSupport {
            mount,
            network: mount,
            through_user_namespace: euid != 0,
        },
        euid,
        can_switch_users: euid == 0,
        hidden: vec![PathBuf::from("/var/lib/supervisor")],
        adopts_orphans: false,
    }
}

const PLAIN: &str = "[[agents]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n";

#[test]
fn a_same_uid_agent_needs_a_cover_and_landlock_or_it_is_refused_with_the_opt_out_named() {
    let c = config(PLAIN);
    let a = &c.agents[0];
    let p = plan(a, &c, &host(1000, true, true));
    assert!(p.refusal.is_none(), "{:?}", p.refusal);
    assert_eq!(p.layers(), ["mount namespace", "landlock domain"]);
    assert!(p.contained());

    for (mount, landlock) in [(false, true), (true, false), (false, false)] {
        let p = plan(a, &c, &host(1000, mount, landlock));
        let why = p.refusal.expect("refused");
        assert!(why.contains("agent `a`"), "{why}");
        assert!(why.contains("allow_unconfined = true"), "{why}");
        assert!(why.contains("user = "), "{why}");
    }
    let c = config(&format!("{PLAIN}allow_unconfined = true\n"));
    let p = plan(&c.agents[0], &c, &host(1000, false, false));
    assert!(p.refusal.is_none());
    assert!(
        p.warnings.iter().any(|w| w.contains("runs unconfined")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn a_policy_suffices_without_a_mount_namespace_and_needs_landlock() {
    let c = config(&format!("{PLAIN}read = [\"/srv/data\"]\n"));
    let p = plan(&c.agents[0], &c, &host(1000, false, true));
    assert!(p.refusal.is_none(), "{:?}", p.refusal);
    assert_eq!(p.landlock, Some(true));
    let p = plan(&c.agents[0], &c, &host(1000, true, false));
    assert!(p.refusal.unwrap().contains("no Landlock"));

    // [sandbox] lists give every agent a policy.
    let c = config(&format!("[sandbox]\nwrite = []\n{PLAIN}"));
    assert_eq!(
        plan(&c.agents[0], &c, &host(1000, true, true)).landlock,
        Some(true)
    );
}

#[test]
fn another_user_suffices_and_root_agents_lose_their_capabilities() {
    let c = config(&format!("{PLAIN}user = \"nobody\"\n"));
    let p = plan(&c.agents[0], &c, &host(0, false, false));
    assert!(p.refusal.is_none(), "{:?}", p.refusal);
    assert!(p.other_uid && !p.drop_caps);

    // The default account applies to agents without `user`, as root only.
    let c = config(&format!("[sandbox]\nagent_user = \"nobody\"\n{PLAIN}"));
    let p = plan(&c.agents[0], &c, &host(0, false, false));
    assert_eq!(p.user.as_deref(), Some("nobody"));
    assert!(p.other_uid);
    let p = plan(&c.agents[0], &c, &host(1000, true, true));
    assert!(p.user.is_none());
    assert!(
        p.warnings.iter().any(|w| w.contains("agent_user")),
        "{:?}",
        p.warnings
    );

    let c = config(PLAIN);
    let p = plan(&c.agents[0], &c, &host(0, true, true));
    assert!(p.drop_caps && !p.other_uid);
    assert!(p.layers().contains(&"no capabilities"));
}

#[test]
fn an_account_that_does_not_exist_refuses_runs_but_only_warns_at_check() {
    let c = config(&format!("{PLAIN}user = \"no-such-user-3f9a\"\n"));
    let p = plan(&c.agents[0], &c, &host(0, false, false));
    assert!(p.refusal.is_none(), "{:?}", p.refusal);
    assert!(
        p.unavailable
            .unwrap()
            .contains("no such user: no-such-user-3f9a")
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("refused until it exists"))
    );
}

#[test]
fn lists_and_working_dirs_inside_hidden_paths_are_refused() {
    let c = config(&format!(
        "{PLAIN}write = [\"/var/lib/supervisor/runs\"]\nworking_dir = \"/var/lib/supervisor\"\n"
    ));
    let why = plan(&c.agents[0], &c, &host(0, true, true))
        .refusal
        .unwrap();
    assert!(
        why.contains("`write` entry /var/lib/supervisor/runs"),
        "{why}"
    );
    assert!(why.contains("working_dir /var/lib/supervisor"), "{why}");
}

#[test]
fn no_network_needs_a_network_namespace() {
    let c = config(&format!("{PLAIN}network = false\nuser = \"nobody\"\n"));
    assert!(plan(&c.agents[0], &c, &host(0, true, true)).network_ns);
    let why = plan(&c.agents[0], &c, &host(0, false, true))
        .refusal
        .unwrap();
    assert!(why.contains("network = false"), "{why}");
}

#[test]
fn limits_without_cgroups_are_warnings_that_name_the_limit() {
    let c = config(&format!("{PLAIN}memory_max = \"256 MiB\"\npids_max = 64\n"));
    let p = plan(&c.agents[0], &c, &host(0, true, true));
    assert!(p.refusal.is_none());
    assert_eq!(p.limits.len(), 2);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("memory_max = 268435456 bytes is not applied")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn hidden_paths_hold_the_state_key_credentials_and_credential_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("state")).unwrap();
    std::fs::write(root.join("key"), "k").unwrap();
    std::fs::write(root.join("hook-secret"), "s").unwrap();
    let text = "[team]\nname = \"t\"\n[[agents]]\nname = \"a\"\ncommand = [\"/bin/true\"]\ntriggers = [\"webhook\"]\n[[webhooks]]\nname = \"w\"\nagent = \"a\"\nsecret = { file = \"hook-secret\" }\n";
    let c = Config::parse(text, &root.join("supervisor.toml")).unwrap();
    let hidden = hidden_paths(&c, &root.join("state"), &root.join("key"));
    for p in ["state", "key", "hook-secret"] {
        assert!(hidden.contains(&root.join(p)), "{p}: {hidden:?}");
    }
    // A path that does not exist hides nothing.
    let hidden = hidden_paths(&c, &root.join("missing"), &root.join("key"));
    assert!(!hidden.iter().any(|p| p.ends_with("missing")));
}
