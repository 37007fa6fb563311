# tetragon-vm lane, guest side: start the agent from the release layout laid over /,
# wait until it has answered for every policy (no fixed sleep: poll the agent), read
# each policy's load state, run the triggers, and send the events tied to a trigger.
_TS=unix:///var/run/tetragon/tetragon.sock
# tetra gives up on a request after 10 s by default; a policy load under TCG takes longer.
_tetra() { /usr/local/bin/tetra --server-address $_TS --timeout 300s "$@"; }
# The agent's CPU so far, user and system (clock ticks): system time is mostly the verifier.
_cpu() { set -- $(cut -d' ' -f14,15 /proc/$_agent/stat 2>/dev/null); echo "utime=${1:-?} stime=${2:-?}"; }
mkdir -p /var/log/tetragon /var/run/tetragon
_want=$(ls /bpfgate/tetragon/policies | wc -l)
read -r _t0 _ < /proc/uptime
# Policies are added one by one over the agent's API, not from a policy directory: at
# start-up one policy that fails to load stops the whole agent, and then no policy
# has a state of its own.
[ -f /bpfgate/tetragon/env ] && . /bpfgate/tetragon/env
# The agent's arguments, one per line as the host wrote them: an argument with spaces or
# quotes (an export allowlist's JSON) reaches the agent as one word.
set --
if [ -f /bpfgate/tetragon/args ]; then
	while IFS= read -r _a || [ -n "$_a" ]; do
		[ -n "$_a" ] && set -- "$@" "$_a"
	done < /bpfgate/tetragon/args
fi
# The agent holds an fd per program, map and link: 328 single kprobes (a generated syscall list)
# ran it out of the console shell's 1024 ("too many open files"). Its real homes allow far more
# (systemd's and containerd's LimitNOFILE): so does this guest.
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null
/usr/local/bin/tetragon "$@" > /run/tetragon.out 2>&1 &
_agent=$!

# Poll, never sleep blindly: ready when the agent answers, gone when its process is.
_deadline=$(( ${_t0%.*} + ${BPFGATE_TETRAGON_WAIT:-150} ))
_bg_wait() {
	while :; do
		"$@" && return 0
		kill -0 $_agent 2>/dev/null || return 1
		read -r _now _ < /proc/uptime
		[ "${_now%.*}" -ge "$_deadline" ] && return 1
		sleep 0.3
	done
}
_ready=0
# `tetra status` can answer before the policy API listens: wait for the socket and a listing.
_serving() { [ -S /var/run/tetragon/tetragon.sock ] && _tetra tracingpolicy list -o json > /dev/null 2>&1; }
if _bg_wait _serving; then
	# Each add is reported as it finishes (a refused policy is on disk at once); past the
	# load budget the rest are reported as not added rather than lost to the cell timeout.
	_budget=$(( ${_t0%.*} + ${BPFGATE_TETRAGON_LOAD_BUDGET:-200} ))
	for _f in /bpfgate/tetragon/policies/*; do
		read -r _now _ < /proc/uptime
		if [ "${_now%.*}" -ge "$_budget" ]; then
			emit tp-add "file=${_f##*/} rc=budget up=$_now" ""
			continue
		fi
		_out=$(_tetra tracingpolicy add "$_f" 2>&1)
		_rc=$?
		read -r _now _ < /proc/uptime
		emit tp-add "file=${_f##*/} rc=$_rc up=$_now $(_cpu)" "$_out"
	done
	# The last listing the agent answered is kept: a later one that fails must not erase it.
	_settled() {
		_tetra tracingpolicy list -o json > /tmp/tp.new 2>/tmp/tp.err || return 1
		mv /tmp/tp.new /tmp/tp.json
		! grep -q 'TP_STATE_LOADING' /tmp/tp.json
	}
	_deadline=$(( ${_now%.*} + 60 ))
	_bg_wait _settled
	# Ready once the agent answered a listing, settled or not: a policy still loading when the
	# time is up is the machine's (its check says so), and the enabled ones still face the
	# triggers, as on a cluster node. An agent that never answered, or died since, is not ready.
	[ -s /tmp/tp.json ] && kill -0 $_agent 2>/dev/null && _ready=1
fi
read -r _t1 _ < /proc/uptime
_alive=1; kill -0 $_agent 2>/dev/null || _alive=0
# tetra's complaints and, when the agent never got ready, the end of its log: parts of the
# tp-list record, sent before it.
[ -s /tmp/tp.err ] && tail -c 2000 /tmp/tp.err | emit -i tp-list-stderr "of=tp-list"
[ $_ready -eq 1 ] || tail -c 3000 /run/tetragon.out | emit -i agent-tail "of=tp-list"
# What the loader said of single hooks (a call skipped as not found, a pre-validation
# warning): the listing of v1.5.0 has no per-hook status (suites/tetragon/load-state.ts).
_hooks=$(grep -E -f /bpfgate/tetragon/hook-log-pattern /run/tetragon.out 2>/dev/null | tail -c 4000)
[ -n "$_hooks" ] && printf '%s\n' "$_hooks" | emit -i hook-log "of=tp-list"
cat /tmp/tp.json 2>/dev/null | emit -i tp-list "ready=$_ready alive=$_alive want=$_want started=$_t0 listed=$_t1"

if [ $_ready -eq 1 ]; then
	: > /run/tetragon-trigger-pids
	while read -r _seq _id _marker; do
		[ -n "$_seq" ] || continue
		export BPFGATE_MARKER="$_marker"
		# The steps' process (its pid) roots the trigger's process tree: every event of it
		# and of its descendants is the trigger's, whatever their argv says.
		timeout 15 sh /bpfgate/triggers/$_seq.steps.sh < /dev/null > /dev/null 2>&1 &
		echo "$! $_marker" >> /run/tetragon-trigger-pids
		wait $!
		timeout 15 sh /bpfgate/triggers/$_seq.cleanup.sh < /dev/null > /dev/null 2>&1
	done < /bpfgate/tetragon/triggers
	# The export is written asynchronously: wait until it stops growing.
	_last=-1
	for _i in $(seq 1 40); do
		_size=$(wc -c < /var/log/tetragon/tetragon.log 2>/dev/null || echo 0)
		[ "$_size" = "$_last" ] && break
		_last=$_size
		sleep 0.5
	done
	# Only events tied to a trigger leave the guest (tied-events.awk: by process tree or
	# marker): every byte on the console is slow. The roots go with them, for the host.
	emit -i trigger-pids "of=tetragon-events" < /run/tetragon-trigger-pids
	awk -v pids=/run/tetragon-trigger-pids -v markers=/bpfgate/tetragon/markers -f /bpfgate/tetragon/tied-events.awk \
		/var/log/tetragon/tetragon.log /var/log/tetragon/tetragon.log | emit -i tetragon-events "bytes=$_last"
fi
tail -c 6000 /run/tetragon.out | emit -i agent-log "alive=$_alive"
kill $_agent 2>/dev/null
# Reached the end: an agent that is already gone makes kill fail, not the step.
exit 0
