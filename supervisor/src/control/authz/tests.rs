//! The rules, for every combination of caller and target that matters:
//! written out for the README's table, then as properties over random teams.

use std::path::Path;

use proptest::prelude::*;
use supervisor_config::Config;
use supervisor_protocol::{ScopeFor, Target, TargetScope};
use supervisor_store::Scope;

use super::*;
use crate::control::Caller;

/// A team of `admins` (one flag per member `m0`, `m1`, ...).
fn team(admins: &[bool]) -> Config {
    let mut text = String::from("[team]\nname = \"acme\"\n");
    for (i, admin) in admins.iter().enumerate() {
        text.push_str(&format!(
            "[[members]]\nname = \"m{i}\"\nunix_user = \"u{i}\"\nadmin = {admin}\n"
        ));
    }
    Config::parse(&text, Path::new("/etc/supervisor/supervisor.toml")).unwrap()
}

/// The caller with unix user `u{i}` (a member when the team has one).
fn caller(config: &Config, i: usize) -> Caller {
    let user = format!("u{i}");
    Caller {
        uid: 1000 + i as u32,
        member: config.member_by_unix_user(&user).cloned(),
        user,
        via_socket: true,
    }
}

fn target(scope: TargetScope) -> Target {
    Target {
        scope,
        name: "TOKEN".into(),
    }
}

fn personal(member: Option<&str>) -> Target {
    target(TargetScope::Personal {
        member: member.map(str::to_owned),
    })
}

fn denied(r: Result<impl std::fmt::Debug>) -> String {
    let e = r.unwrap_err();
    assert!(e.downcast_ref::<Denied>().is_some(), "not a denial: {e}");
    e.to_string()
}

#[test]
fn the_rules_as_the_readme_states_them() {
    // m0 is an admin, m1 is not; u9 is nobody.
    let c = team(&[true, false]);
    let (admin, member, nobody) = (caller(&c, 0), caller(&c, 1), caller(&c, 9));
    let team_t = target(TargetScope::Team);

    assert_eq!(secret_scope(&admin, &c, &team_t).unwrap(), Scope::Team);
    assert!(denied(secret_scope(&member, &c, &team_t)).contains("managed by admins"));

    assert_eq!(
        secret_scope(&member, &c, &personal(None)).unwrap(),
        Scope::Personal("m1".into())
    );
    assert_eq!(
        secret_scope(&member, &c, &personal(Some("m1"))).unwrap(),
        Scope::Personal("m1".into())
    );
    let e = denied(secret_scope(&member, &c, &personal(Some("m0"))));
    assert!(
        e.contains("only admins manage other members' personal secrets"),
        "{e}"
    );
    assert_eq!(
        secret_scope(&admin, &c, &personal(Some("m1"))).unwrap(),
        Scope::Personal("m1".into())
    );
    let e = secret_scope(&admin, &c, &personal(Some("carol"))).unwrap_err();
    assert!(e.to_string().contains("no member named `carol`"), "{e}");
    // A non-admin learns nothing about who exists.
    assert!(secret_scope(&member, &c, &personal(Some("carol"))).is_err());

    assert_eq!(
        secret_list(&member, &c, false).unwrap(),
        Visible::Own("m1".into())
    );
    assert!(denied(secret_list(&member, &c, true)).contains("needs an admin"));
    assert_eq!(secret_list(&admin, &c, true).unwrap(), Visible::Everything);

    let ask = |name: &str| ScopeFor::Member(name.to_owned());
    assert_eq!(
        scope_query(&member, &c, &ScopeFor::Caller)
            .unwrap()
            .as_deref(),
        Some("m1"),
        "by default, the caller's own runs"
    );
    assert_eq!(scope_query(&member, &c, &ScopeFor::Nobody).unwrap(), None);
    assert_eq!(
        scope_query(&member, &c, &ask("m1")).unwrap().as_deref(),
        Some("m1")
    );
    assert!(denied(scope_query(&member, &c, &ask("m0")).map(|_| ())).contains("only admins"));
    assert_eq!(
        scope_query(&admin, &c, &ask("m1")).unwrap().as_deref(),
        Some("m1")
    );

    assert_eq!(runs(&member, &c).unwrap(), Visible::Own("m1".into()));
    assert_eq!(runs(&admin, &c).unwrap(), Visible::Everything);
    assert!(denied(audit(&member, &c)).contains("for admins"));
    assert!(audit(&admin, &c).is_ok());
    assert_eq!(start_run(&member, &c).unwrap().name, "m1");

    // Somebody who is no member may do nothing, and is told how to become one.
    let refusals = [
        secret_scope(&nobody, &c, &team_t).map(|_| ()),
        secret_scope(&nobody, &c, &personal(None)).map(|_| ()),
        secret_list(&nobody, &c, false).map(|_| ()),
        scope_query(&nobody, &c, &ScopeFor::Nobody).map(|_| ()),
        start_run(&nobody, &c).map(|_| ()),
        runs(&nobody, &c).map(|_| ()),
        audit(&nobody, &c),
    ];
    for r in refusals {
        let e = r.unwrap_err().to_string();
        assert_eq!(e, "uid 1009 (user `u9`) is not a member of team `acme`");
    }
    let hint = nobody.not_a_member(&c, false).hint.unwrap();
    assert!(
        hint.contains("[[members]]\n  name = \"u9\"\n  unix_user = \"u9\"\n"),
        "{hint}"
    );
    assert!(hint.contains("/etc/supervisor/supervisor.toml"), "{hint}");
    // On the socket the request is not known yet: the admin who adds them
    // is told what `admin = true` is for.
    assert!(
        hint.contains("  admin = true   # only for one who manages team secrets"),
        "{hint}"
    );

    // In this process the request is known: the entry says `admin = true`
    // exactly when the request needs it.
    let local = Caller {
        via_socket: false,
        ..nobody.clone()
    };
    let hint_for = |r: Result<()>| {
        let e = r.unwrap_err();
        e.downcast_ref::<crate::fail::Failure>()
            .and_then(|f| f.hint.clone())
            .unwrap_or_default()
    };
    for (r, admin) in [
        (secret_scope(&local, &c, &team_t).map(|_| ()), true),
        (
            secret_scope(&local, &c, &personal(Some("m0"))).map(|_| ()),
            true,
        ),
        (audit(&local, &c), true),
        (secret_list(&local, &c, true).map(|_| ()), true),
        (secret_scope(&local, &c, &personal(None)).map(|_| ()), false),
        (secret_list(&local, &c, false).map(|_| ()), false),
        (start_run(&local, &c).map(|_| ()), false),
    ] {
        let hint = hint_for(r);
        assert!(hint.contains("unix_user = \"u9\""), "{hint}");
        assert_eq!(hint.contains("admin = true"), admin, "{hint}");
    }
}

#[test]
fn visibility_of_secrets_and_runs() {
    let own = Visible::Own("bob".into());
    assert!(own.secret(None));
    assert!(own.secret(Some("bob")));
    assert!(!own.secret(Some("alice")));
    assert!(own.run(Some("bob")));
    assert!(!own.run(Some("alice")));
    assert!(
        !own.run(None),
        "runs with nobody behind them are for admins"
    );
    assert!(Visible::Everything.secret(Some("alice")) && Visible::Everything.run(None));
}

fn any_scope(members: usize) -> impl Strategy<Value = TargetScope> {
    prop_oneof![
        Just(TargetScope::Team),
        Just(TargetScope::Personal { member: None }),
        (0..members + 2).prop_map(|i| TargetScope::Personal {
            member: Some(format!("m{i}"))
        }),
    ]
}

proptest! {
    /// Whatever the team and the request: a write lands on the caller's
    /// own personal secrets unless the caller is an admin, and always on an
    /// existing member; nobody outside the team gets anything.
    #[test]
    fn nobody_but_an_admin_reaches_beyond_their_own(
        admins in proptest::collection::vec(any::<bool>(), 1..5),
        who in 0usize..6,
        scope in any_scope(5),
        all in any::<bool>(),
        for_member in proptest::option::of(0usize..6),
    ) {
        let c = team(&admins);
        let me = caller(&c, who);
        let is_admin = me.member.as_ref().is_some_and(|m| m.admin);
        let my_name = me.member.as_ref().map(|m| m.name.clone());

        match secret_scope(&me, &c, &target(scope.clone())) {
            Ok(Scope::Team) => prop_assert!(is_admin),
            Ok(Scope::Personal(owner)) => {
                prop_assert!(c.member(&owner).is_some());
                prop_assert!(is_admin || Some(&owner) == my_name.as_ref());
            }
            Err(_) => {
                // Refused only when the rule says so.
                let allowed = match (&scope, &my_name) {
                    (_, None) => false,
                    (TargetScope::Team, _) => is_admin,
                    (TargetScope::Personal { member: None }, _) => true,
                    (TargetScope::Personal { member: Some(o) }, Some(me)) =>
                        c.member(o).is_some() && (is_admin || o == me),
                };
                prop_assert!(!allowed, "refused although allowed: {scope:?}");
            }
        }

        let listing = secret_list(&me, &c, all);
        prop_assert_eq!(listing.is_ok(), my_name.is_some() && (!all || is_admin));
        if let (Ok(v), Some(me_name)) = (&listing, &my_name) {
            for other in c.members.iter().filter(|m| &m.name != me_name) {
                prop_assert_eq!(v.secret(Some(&other.name)), is_admin && all);
                prop_assert_eq!(v.secret(Some(me_name)), true);
            }
        }

        let runs_v = runs(&me, &c);
        prop_assert_eq!(runs_v.is_ok(), my_name.is_some());
        if let Ok(v) = runs_v {
            prop_assert_eq!(v.run(None), is_admin);
        }
        prop_assert_eq!(audit(&me, &c).is_ok(), is_admin);

        let asked = for_member.map(|i| format!("m{i}"));
        let allowed = my_name.is_some()
            && (is_admin || asked.is_none() || asked == my_name);
        let who = asked.clone().map_or(ScopeFor::Nobody, ScopeFor::Member);
        let answer = scope_query(&me, &c, &who);
        prop_assert_eq!(answer.is_ok(), allowed);
        if let Ok(whose) = answer {
            prop_assert_eq!(whose, asked);
        }
        // Asking about one's own runs is always allowed to a member.
        prop_assert_eq!(
            scope_query(&me, &c, &ScopeFor::Caller).ok().flatten(),
            my_name.clone()
        );
    }
}
