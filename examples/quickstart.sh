#!/usr/bin/env bash
# The quick start: builds the supervisor, sets up ./demo from the example
# config (SQLite state in ./demo/state), stores a team and a personal
# secret, and runs the example agent, which lists the variables it received
# and tries to print the values: they come out redacted.
#
# Safe to run again: what ./demo already holds (your edits of its config or
# agents, the key, the secrets) is kept, never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "building the supervisor (the first build takes a few minutes; cargo shows its progress)"
cargo build -p supervisor
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/supervisor"
demo="$PWD/demo"

mkdir -p "$demo"
if [ -e "$demo/supervisor.toml" ]; then
  echo "keeping $demo/supervisor.toml as it is (delete it to start again from the example)"
else
  # Map the example's member `you` to whoever runs this script.
  sed "s/unix_user = \"you\"/unix_user = \"$(id -un)\"/" examples/supervisor.toml > "$demo/supervisor.toml"
  echo "created $demo/supervisor.toml from examples/supervisor.toml (member \`you\` is $(id -un))"
fi
if [ ! -e "$demo/agents" ]; then
  cp -R examples/agents "$demo/"
fi
export SUPERVISOR_CONFIG="$demo/supervisor.toml"

"$bin" init

# Random demo values, stored once: a secret that exists is left as it is.
store() {
  local scope=$1 name=$2 description=$3
  if "$bin" secret list --json | grep -q "\"name\":\"$name\""; then
    echo "keeping $name as it is"
    return
  fi
  local value
  value="demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  printf %s "$value" | "$bin" secret create "$scope" --name "$name" --description "$description"
}
store --team DEMO_API_TOKEN "A team secret: every run receives it"
store --personal MY_PERSONAL_TOKEN "Yours: only runs you start receive it"

echo
"$bin" secret list
echo
echo "\$ supervisor scope show-env --trigger cron    # what a scheduled run would get"
"$bin" scope show-env --trigger cron
echo
echo "\$ supervisor run show-env --prompt 'show me what you got'"
"$bin" run show-env --prompt "show me what you got"
