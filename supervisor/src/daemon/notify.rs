//! The systemd notification protocol: READY=1 once listening, STATUS=
//! lines, STOPPING=1 at shutdown, and WATCHDOG=1 pings when asked for.
//! Without `$NOTIFY_SOCKET` every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Pings the watchdog at half its interval, for as long as the daemon lives.
pub async fn watchdog() {
    let Some(usec) = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return std::future::pending().await;
    };
    let every = Duration::from_micros(usec / 2).max(Duration::from_millis(100));
    loop {
        send(&[NotifyState::Watchdog]);
        tokio::time::sleep(every).await;
    }
}
