//! Who is asking: a Unix user, and the member the config maps it to. In
//! local mode that is the user running this process; on the control socket
//! it is the peer's uid as the kernel reports it (`SO_PEERCRED`), never
//! anything the client says.

use anyhow::{Context as _, Result};
use supervisor_config::{Config, Member};

use crate::fail::Failure;

/// The user behind a request and, when the config knows them, the member.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    /// The user's name, or the uid as text when it has none.
    pub user: String,
    pub member: Option<Member>,
    /// Whether the request came through the control socket.
    pub via_socket: bool,
}

impl Caller {
    /// The user running this process (local mode).
    pub fn local(config: &Config) -> Result<Caller> {
        let uid = nix::unistd::getuid().as_raw();
        let user = user_name(uid)?;
        Ok(Caller::new(config, uid, user, false))
    }

    /// The peer of a control socket connection. Reads the user database, so
    /// call it off the async threads.
    pub fn peer(config: &Config, uid: u32) -> Result<Caller> {
        let user = user_name(uid)?;
        Ok(Caller::new(config, uid, user, true))
    }

    fn new(config: &Config, uid: u32, user: String, via_socket: bool) -> Caller {
        let member = config.member_by_unix_user(&user).cloned();
        Caller {
            uid,
            user,
            member,
            via_socket,
        }
    }

    /// The refusal for a caller who is no member: names the user (and, on
    /// the socket, the uid) and shows the `[[members]]` entry to add, with
    /// `admin = true` when what they asked for needs an admin (`admin`:
    /// team secrets, another member's, every run, the audit log). On the
    /// socket the request is not known yet, and the admin who adds them
    /// decides.
    pub fn not_a_member(&self, config: &Config, admin: bool) -> Failure {
        let user = &self.user;
        let entry = format!("  [[members]]\n  name = \"{user}\"\n  unix_user = \"{user}\"\n");
        let file = config.path.display();
        if self.via_socket {
            Failure::new(format!(
                "uid {} (user `{user}`) is not a member of team `{}`",
                self.uid, config.team.name
            ))
            .hint(format!(
                "an admin adds to {file} on the supervisor's host:\n\n{entry}  admin = true   # only for one who manages team secrets and reads every run\n\nand reloads the daemon (`systemctl reload supervisor`)"
            ))
        } else {
            Failure::new(format!(
                "the user `{user}` is not a member of team `{}`",
                config.team.name
            ))
            .hint(if admin {
                format!("add to {file}:\n\n{entry}  admin = true   # what you asked for needs an admin\n")
            } else {
                format!("add to {file}:\n\n{entry}")
            })
        }
    }
}

/// The name of user `uid`, or the uid as text when it has no name.
fn user_name(uid: u32) -> Result<String> {
    let uid = nix::unistd::Uid::from_raw(uid);
    Ok(nix::unistd::User::from_uid(uid)
        .with_context(|| format!("looking up user {uid}"))?
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string()))
}
