#!/bin/bash
# A resumable queue of long runs, one at a time, pinned to one CPU core:
#
#   experiments/run_queue.sh CORE LIST [WAIT_PID]
#
# Runs, from the current directory, each line of LIST (a shell command; blank lines and lines
# starting with # are skipped) that has not yet ended, in order, pinned to CORE at nice 5, its
# output appended to LIST.logs/<line number>.log. What ended is listed in LIST.done (`ok` or
# `failed`; remove a `failed` line to run it again), so starting the queue again (on the same
# machine, after a session ends) goes on where it stopped; a trainer resumes from its
# checkpoints. A command killed by a signal (the session ended) is not marked, nor is a trainer
# that SIGTERM or Ctrl-C stopped: it saves, exits 0 and ends its output with "run the same
# command to resume", and the queue then ends. LIST is read again after every command, so
# lines can be added while it runs. While LIST.hold exists the queue waits before its next
# command; when LIST.stop exists it ends after the current one. With WAIT_PID it first waits
# for that process to end. After each command it runs $AFTER_EACH, if set (the third edition:
# copy the training logs into the results directory).
#
# Two queues, one per core, keep both cores training (the third edition's lists:
# experiments/results/g2p/queue/). Run them from a worktree pinned to one commit, so that the
# code cannot change under a run: git worktree add --detach ../pinned HEAD.
set -u
core=$1 list=$(realpath "$2") wait_pid=${3:-}
[ -f "$list" ] || { echo "run_queue: no list $2" >&2; exit 2; }
mkdir -p "$list.logs" && touch "$list.done"
pin=() && command -v taskset > /dev/null && pin=(taskset -c "$core")  # none on macOS
if [ -n "$wait_pid" ]; then while kill -0 "$wait_pid" 2>/dev/null; do sleep 30; done; fi
while [ ! -e "$list.stop" ]; do
  next="" number=0
  while IFS= read -r line; do
    number=$((number + 1))
    case "$line" in "" | "#"*) continue ;; esac
    if ! grep -qxF -e "ok $line" -e "failed $line" "$list.done"; then next=$line; break; fi
  done < "$list"
  [ -z "$next" ] && break
  while [ -e "$list.hold" ]; do sleep 20; done
  echo "$(date -Is) start: $next" >> "$list.logs/queue.log"
  log=$list.logs/$number.log && touch "$log" && before=$(wc -c < "$log")
  nice -n 5 "${pin[@]}" bash -c "$next" < /dev/null >> "$log" 2>&1
  rc=$?
  echo "$(date -Is) exit $rc: $next" >> "$list.logs/queue.log"
  if [ $rc = 0 ] && tail -c +$((before + 1)) "$log" | tail -n 1 | grep -q "run the same command to resume"; then
    echo "$(date -Is) stopped, not done: $next" >> "$list.logs/queue.log"
    break  # stopped on request (SIGTERM, Ctrl-C), its checkpoint saved: resumed next time
  elif [ $rc = 0 ]; then
    echo "ok $next" >> "$list.done"
  elif [ $rc -lt 128 ]; then
    echo "failed $next" >> "$list.done"
  else
    break  # killed by a signal: the machine is going away
  fi
  if [ -n "${AFTER_EACH:-}" ]; then bash -c "$AFTER_EACH"; fi
done
