//! What the Slack endpoint keeps between requests: the deliveries it saw
//! lately (a shortcut before the claim on disk), the Web API client for the
//! configured base, and the profiles `users.info` returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slack_morphism::prelude::{SlackClient, SlackClientHyperConnector};
use supervisor_config::Config;
use supervisor_triggers::slack;

use super::api::{Client, Profile, SlackApi};
use crate::daemon::Credentials;

/// How long the endpoint itself remembers a delivery, to answer Slack's
/// retries (about immediately, after 1 and after 5 minutes) at once. Only
/// a shortcut: the claim in the store decides.
const RECENT_TTL: Duration = Duration::from_secs(10 * 60);
/// Deliveries remembered before expired ones are dropped.
const RECENT_MAX: usize = 100_000;
/// How long a `users.info` answer is trusted.
const EMAIL_TTL: Duration = Duration::from_secs(3600);
/// Cached `users.info` answers kept before expired ones are dropped.
const EMAIL_CACHE_MAX: usize = 10_000;

/// What the endpoint keeps between requests.
#[derive(Default)]
pub(super) struct SlackState {
    /// The Web API client, for the API base it was built for.
    client: Mutex<Option<(String, Arc<Client>)>>,
    /// Profile emails and workspaces by Slack user id, with when they were
    /// looked up.
    emails: Mutex<HashMap<String, (Profile, Instant)>>,
    /// Deliveries seen lately, by `event_id`.
    recent: Mutex<HashMap<String, Instant>>,
}

impl SlackState {
    /// Notes a delivery; `false` when it was seen within [`RECENT_TTL`].
    pub(super) fn first_sight(&self, event_id: &str) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent
            .get(event_id)
            .is_some_and(|at| at.elapsed() < RECENT_TTL)
        {
            return false;
        }
        if recent.len() >= RECENT_MAX {
            recent.retain(|_, at| at.elapsed() < RECENT_TTL);
            if recent.len() >= RECENT_MAX {
                // A flood: the store still dedupes what is forgotten here.
                recent.clear();
            }
        }
        recent.insert(event_id.to_owned(), Instant::now());
        true
    }

    pub(super) fn forget(&self, event_id: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(event_id);
    }

    /// A client for `config`'s API base (rebuilt when a reload changes it)
    /// with the bot token of `credentials`.
    pub(super) fn api(&self, config: &Config, credentials: Arc<Credentials>) -> Option<SlackApi> {
        let base = &config.slack.as_ref()?.api_base;
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let client = match &*slot {
            Some((b, c)) if b == base => c.clone(),
            _ => {
                let connector =
                    SlackClientHyperConnector::with_connector(crate::daemon::client::connector())
                        .with_slack_api_url(base);
                let c = Arc::new(SlackClient::new(connector));
                *slot = Some((base.clone(), c.clone()));
                c
            }
        };
        Some(SlackApi {
            client,
            credentials,
        })
    }

    /// The profile email of a Slack user, from the cache or `users.info`,
    /// when that user belongs to `workspace` (the event's own team): a guest
    /// from another workspace (Slack Connect) may show any email.
    /// Lookup failures are logged and not cached.
    pub(super) async fn email_of(
        &self,
        api: &SlackApi,
        user: &str,
        workspace: &str,
    ) -> Option<String> {
        let profile = self.profile_of(api, user).await?;
        slack::identity_email(workspace, profile.team.as_deref(), profile.email.as_deref())
            .map(str::to_owned)
    }

    async fn profile_of(&self, api: &SlackApi, user: &str) -> Option<Profile> {
        {
            let cache = self.emails.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((profile, at)) = cache.get(user) {
                if at.elapsed() < EMAIL_TTL {
                    return Some(profile.clone());
                }
            }
        }
        match api.user_email(user).await {
            Ok(email) => {
                let mut cache = self.emails.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= EMAIL_CACHE_MAX {
                    cache.retain(|_, (_, at)| at.elapsed() < EMAIL_TTL);
                    if cache.len() >= EMAIL_CACHE_MAX {
                        cache.clear();
                    }
                }
                cache.insert(user.to_owned(), (email.clone(), Instant::now()));
                Some(email)
            }
            Err(e) => {
                tracing::warn!(slack_user = %user, error = %e, "could not look up a Slack user's email");
                None
            }
        }
    }
}
