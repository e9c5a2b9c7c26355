//! Tests of the containment layers: the mount cover, Landlock, the network
//! namespace, and signals sent as the agent's user.

use super::*;

/// A state directory with a key and a run home inside, for the cover tests.
struct FakeState {
    _dir: tempfile::TempDir,
    state: PathBuf,
    home: PathBuf,
}

fn fake_state() -> FakeState {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().canonicalize().unwrap().join("state");
    let home = state.join("tmp/run-1");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(state.join("master.key"), "sentinel-key-0b7d").unwrap();
    std::fs::write(home.join("note"), "mine").unwrap();
    FakeState {
        _dir: dir,
        state,
        home,
    }
}

/// Runs `script` under `confine` and returns what it printed.
async fn confined_output(script: &str, confine: &Confinement) -> String {
    let cmd = argv(&["/bin/sh", "-c", script]);
    let env = path_env();
    let out = spawn(&ChildSpec {
        confine: Some(confine),
        ..spec(&cmd, &env)
    })
    .unwrap()
    .wait_with_output()
    .await
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_cover_hides_the_state_but_not_the_home_and_cannot_be_undone() {
    if !is_root() || !namespace::probe(false).mount {
        eprintln!("skipped: needs root and mount namespaces");
        return;
    }
    let f = fake_state();
    let hidden = vec![f.state.clone()];
    let plan = NamespacePlan::new(&namespace::NamespaceRequest {
        hidden: &hidden,
        keep: Some(&f.home),
        isolate_network: false,
        user_namespace: None,
    })
    .unwrap();
    let confine = Confinement {
        namespace: Some(plan),
        drop_caps: true,
        ..Confinement::default()
    };
    let (state, home) = (f.state.display(), f.home.display());
    // No capability left: no unmount here, and in a user namespace of its own
    // the inherited mounts are locked.
    let script = format!(
        "cat {state}/master.key; cat {home}/note; echo written > {home}/new && echo wrote; \
         umount -l {state} 2>/dev/null && echo UNMOUNTED; \
         unshare -Urm sh -c 'umount -l {state} && cat {state}/master.key' 2>/dev/null || echo locked; \
         grep -E 'CapEff|CapBnd' /proc/self/status"
    );
    let out = confined_output(&script, &confine).await;
    assert!(!out.contains("sentinel-key"), "{out}");
    assert!(!out.contains("UNMOUNTED"), "{out}");
    assert!(
        out.contains("mine") && out.contains("wrote") && out.contains("locked"),
        "{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    // Nor any it could gain through exec: the bounding set is empty too.
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    // The home is the real one: what the agent wrote is there for the parent.
    assert_eq!(
        std::fs::read_to_string(f.home.join("new")).unwrap(),
        "written\n"
    );
    // Nothing of the cover reached this namespace.
    assert!(std::fs::read_to_string(f.state.join("master.key")).is_ok());
}

#[tokio::test]
async fn a_landlock_policy_alone_keeps_the_state_out_of_reach() {
    if landlock::abi().is_none() {
        eprintln!("skipped: no Landlock");
        return;
    }
    let f = fake_state();
    let parent = f.state.parent().unwrap().to_path_buf();
    let other = parent.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("data"), "sentinel-other-5c1e").unwrap();
    let allowed = parent.join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::write(allowed.join("data"), "fine").unwrap();
    let hidden = vec![f.state.clone()];
    // The whole parent is readable, but the state directory is carved out.
    let read = [allowed.clone(), parent.clone()];
    let ruleset = landlock::ruleset(&landlock::Domain::Policy {
        home: &f.home,
        read: &read[..1],
        write: &[],
        hidden: &hidden,
    })
    .unwrap();
    let confine = Confinement {
        landlock: Some(ruleset),
        ..Confinement::default()
    };
    let script = format!(
        "cat {a}/data; cat {o}/data; cat {s}/master.key; echo x > {h}/w && echo home-ok; echo x > {a}/w || echo read-only",
        a = allowed.display(),
        o = other.display(),
        s = f.state.display(),
        h = f.home.display()
    );
    let out = confined_output(&script, &confine).await;
    assert!(
        out.contains("fine") && out.contains("home-ok") && out.contains("read-only"),
        "{out}"
    );
    assert!(!out.contains("sentinel"), "{out}");

    let ruleset = landlock::ruleset(&landlock::Domain::Policy {
        home: &f.home,
        read: &read[1..],
        write: &[],
        hidden: &hidden,
    })
    .unwrap();
    let confine = Confinement {
        landlock: Some(ruleset),
        ..Confinement::default()
    };
    let out = confined_output(
        &format!(
            "cat {}/data; cat {}/master.key",
            other.display(),
            f.state.display()
        ),
        &confine,
    )
    .await;
    assert!(out.contains("sentinel-other"), "{out}");
    assert!(!out.contains("sentinel-key"), "{out}");
}

#[tokio::test]
async fn a_landlocked_child_cannot_reach_processes_outside_its_domain() {
    if landlock::abi().is_none() {
        eprintln!("skipped: no Landlock");
        return;
    }
    // A process of the same user outside the domain, as the user's shell is.
    let cmd = argv(&["/bin/sleep", "30"]);
    let mut outside = spawn(&spec(&cmd, &[])).unwrap();
    let pid = outside.id().unwrap();
    // As agents run: without capabilities (CAP_SYS_PTRACE would pass).
    let confine = Confinement {
        landlock: Some(landlock::ruleset(&landlock::Domain::Base).unwrap()),
        drop_caps: is_root(),
        ..Confinement::default()
    };
    let script = format!(
        "for f in root/etc/hostname environ mem; do head -c1 /proc/{pid}/$f >/dev/null 2>&1 && echo reached $f; done; \
         for d in root/ cwd/; do ls /proc/{pid}/$d >/dev/null 2>&1 && echo reached $d; done; \
         readlink /proc/{pid}/fd/1 >/dev/null 2>&1 && echo reached fd; \
         cat /proc/self/environ >/dev/null && echo own-ok"
    );
    let out = confined_output(&script, &confine).await;
    assert!(!out.contains("reached"), "{out}");
    assert!(out.contains("own-ok"), "{out}");
    // Without the domain the same script reaches it: the test can fail.
    let out = confined_output(&script, &Confinement::default()).await;
    assert!(out.contains("reached"), "{out}");
    terminate(
        &mut outside,
        &group_only(pid as i32),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn no_network_leaves_only_a_loopback_of_its_own() {
    if !namespace::probe(true).network {
        eprintln!("skipped: no network namespaces here");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hidden: Vec<PathBuf> = Vec::new();
    let user_ns = (!is_root()).then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    let plan = NamespacePlan::new(&namespace::NamespaceRequest {
        hidden: &hidden,
        keep: None,
        isolate_network: true,
        user_namespace: user_ns,
    })
    .unwrap();
    let confine = Confinement {
        namespace: Some(plan),
        ..Confinement::default()
    };
    let script = format!(
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
         bash -c 'echo x > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo CONNECTED; \
         grep -q ' 01 ' /proc/net/tcp || echo no-listener; echo done"
    );
    let out = confined_output(&script, &confine).await;
    assert_eq!(out.lines().next(), Some("lo"), "{out}");
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(out.contains("done"), "{out}");
}

#[tokio::test]
async fn signal_as_stops_an_agent_of_another_user_from_a_child_that_becomes_it() {
    if !is_root() {
        eprintln!("skipped: starting a child as another user needs root");
        return;
    }
    let nobody = RunAs::lookup("nobody", None).unwrap();
    let cmd = argv(&["/bin/sleep", "30"]);
    let mut child = spawn(&ChildSpec {
        run_as: Some(&nobody),
        ..spec(&cmd, &[])
    })
    .unwrap();
    let pid = child.id().unwrap() as i32;
    signal_as(&nobody, &[-pid], Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}
