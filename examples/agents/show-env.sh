#!/bin/sh
# An example agent: shows what the supervisor gave it, then tries to print
# a secret value in several disguises. Every attempt comes out redacted.
echo "run $SUPERVISOR_RUN_ID of agent $SUPERVISOR_AGENT, trigger $SUPERVISOR_TRIGGER, member ${SUPERVISOR_MEMBER:-none}"
echo "variables received:"
env | cut -d= -f1 | sort | sed 's/^/  /'
echo "the run context on stdin:"
sed 's/^/  /'
echo
if [ -n "$DEMO_API_TOKEN" ]; then
  echo "plain:   $DEMO_API_TOKEN"
  printf 'base64:  %s\n' "$(printf %s "$DEMO_API_TOKEN" | base64)"
fi
if [ -n "$MY_PERSONAL_TOKEN" ]; then
  echo "personal: $MY_PERSONAL_TOKEN"
fi
