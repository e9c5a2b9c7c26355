#!/usr/bin/env bash
# The quick start: builds the supervisor, sets up ./demo from the example
# config (SQLite state in ./demo/state), stores a team and a personal
# secret, and runs the example agent, which lists the variables it received
# and tries to print the values: they come out redacted.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p supervisor
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/supervisor"
demo="$PWD/demo"

mkdir -p "$demo"
# Map the example's member `you` to whoever runs this script.
sed "s/unix_user = \"you\"/unix_user = \"$(id -un)\"/" examples/supervisor.toml > "$demo/supervisor.toml"
cp -R examples/agents "$demo/"
export SUPERVISOR_CONFIG="$demo/supervisor.toml"

"$bin" init

# Random demo values; `update` when the secret exists from an earlier run.
store() {
  local scope=$1 name=$2 description=$3
  local value="demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  if "$bin" secret list --json | grep -q "\"name\":\"$name\",\"scope\":\"${scope#--}\""; then
    printf %s "$value" | "$bin" secret update "$scope" --name "$name"
  else
    printf %s "$value" | "$bin" secret create "$scope" --name "$name" --description "$description"
  fi
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
