//! The child's environment, built from nothing: the agent's base `env`,
//! then a private HOME and TMPDIR, then the run's `SUPERVISOR_*` variables.
//! Secrets are added by the spawn module, last.

use std::path::Path;

use supervisor_config::Agent;

/// The largest prompt passed as `SUPERVISOR_PROMPT` (the run context on
/// stdin always carries it whole).
pub const MAX_PROMPT_ENV: usize = 32 * 1024;

/// What the run's variables say about it.
pub struct RunVars<'a> {
    pub run_id: &'a str,
    pub agent: &'a str,
    pub trigger: &'a str,
    pub member: Option<&'a str>,
    pub prompt: Option<&'a str>,
}

/// The plain (non-secret) variables of a run, in the order they are set.
pub fn plain_env(agent: &Agent, home: &Path, vars: &RunVars<'_>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = agent
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let home = home.to_string_lossy().into_owned();
    for key in ["HOME", "TMPDIR"] {
        if !agent.env.contains_key(key) {
            env.push((key.to_owned(), home.clone()));
        }
    }
    env.push(("SUPERVISOR_RUN_ID".into(), vars.run_id.into()));
    env.push(("SUPERVISOR_AGENT".into(), vars.agent.into()));
    env.push(("SUPERVISOR_TRIGGER".into(), vars.trigger.into()));
    if let Some(member) = vars.member {
        env.push(("SUPERVISOR_MEMBER".into(), member.into()));
    }
    if let Some(prompt) = vars.prompt
        && prompt.len() < MAX_PROMPT_ENV
        && !prompt.contains('\0')
    {
        env.push(("SUPERVISOR_PROMPT".into(), prompt.into()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn agent(env: &[(&str, &str)]) -> Agent {
        Agent {
            name: "a".into(),
            description: None,
            command: vec!["/bin/true".into()],
            working_dir: None,
            timeout: std::time::Duration::from_secs(1),
            kill_grace: std::time::Duration::from_secs(1),
            triggers: vec![],
            secrets: None,
            required_secrets: vec![],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            user: None,
            group: None,
            max_concurrent: None,
            log_limit: 1024,
            policy: Default::default(),
            on_leak: Default::default(),
        }
    }

    fn vars<'a>(member: Option<&'a str>, prompt: Option<&'a str>) -> RunVars<'a> {
        RunVars {
            run_id: "r1",
            agent: "a",
            trigger: "cli",
            member,
            prompt,
        }
    }

    #[test]
    fn base_env_then_home_then_run_variables() {
        let env = plain_env(
            &agent(&[("PATH", "/bin"), ("LANG", "C")]),
            Path::new("/h"),
            &vars(Some("alice"), Some("hi")),
        );
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "LANG",
                "PATH",
                "HOME",
                "TMPDIR",
                "SUPERVISOR_RUN_ID",
                "SUPERVISOR_AGENT",
                "SUPERVISOR_TRIGGER",
                "SUPERVISOR_MEMBER",
                "SUPERVISOR_PROMPT"
            ]
        );
    }

    #[test]
    fn the_agent_may_choose_its_home_and_no_member_means_no_variable() {
        let env = plain_env(
            &agent(&[("HOME", "/srv/a")]),
            Path::new("/h"),
            &vars(None, None),
        );
        assert!(env.contains(&("HOME".into(), "/srv/a".into())));
        assert!(env.contains(&("TMPDIR".into(), "/h".into())));
        assert!(
            !env.iter()
                .any(|(k, _)| k == "SUPERVISOR_MEMBER" || k == "SUPERVISOR_PROMPT")
        );
    }

    #[test]
    fn long_prompts_stay_out_of_the_environment() {
        let long = "x".repeat(MAX_PROMPT_ENV);
        let env = plain_env(&agent(&[]), Path::new("/h"), &vars(None, Some(&long)));
        assert!(!env.iter().any(|(k, _)| k == "SUPERVISOR_PROMPT"));
    }
}
