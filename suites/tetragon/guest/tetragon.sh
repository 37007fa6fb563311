# tetragon-vm lane, guest side: start the agent from the release layout laid over /,
# wait until it has answered for every policy (no fixed sleep: poll the agent), read
# each policy's load state, run the triggers, and send the events tied to a marker.
_TS=unix:///var/run/tetragon/tetragon.sock
mkdir -p /var/log/tetragon /var/run/tetragon /etc/tetragon/tetragon.tp.d
cp /bpfgate/tetragon/policies/* /etc/tetragon/tetragon.tp.d/ 2>/dev/null
_want=$(ls /etc/tetragon/tetragon.tp.d | wc -l)
read -r _t0 _ < /proc/uptime
/usr/local/bin/tetragon --tracing-policy-dir /etc/tetragon/tetragon.tp.d > /run/tetragon.out 2>&1 &
_agent=$!

# Ready: the agent answers and lists every policy file in a settled state.
_ready=0
_deadline=$(( ${_t0%.*} + ${BPFGATE_TETRAGON_WAIT:-150} ))
while :; do
	if tetra --server-address $_TS tracingpolicy list -o json > /tmp/tp.json 2>/tmp/tp.err; then
		_n=$(grep -o '"state":"TP_STATE_[A-Z_]*"' /tmp/tp.json | grep -vc 'LOADING')
		[ "$_n" -ge "$_want" ] && { _ready=1; break; }
	fi
	kill -0 $_agent 2>/dev/null || break
	read -r _now _ < /proc/uptime
	[ "${_now%.*}" -ge "$_deadline" ] && break
	sleep 0.5
done
read -r _t1 _ < /proc/uptime
_alive=1; kill -0 $_agent 2>/dev/null || _alive=0
emit tp-list "ready=$_ready alive=$_alive want=$_want started=$_t0 listed=$_t1" "$(cat /tmp/tp.json 2>/dev/null)
@@stderr@@
$(tail -c 2000 /tmp/tp.err 2>/dev/null)"

if [ $_ready -eq 1 ]; then
	BPFGATE_ARCH=$(uname -m); [ "$BPFGATE_ARCH" = aarch64 ] && BPFGATE_ARCH=arm64
	export BPFGATE_ARCH
	while read -r _seq _id _marker; do
		[ -n "$_seq" ] || continue
		export BPFGATE_MARKER="$_marker"
		timeout 15 sh /bpfgate/triggers/$_seq.steps.sh < /dev/null > /dev/null 2>&1
		timeout 15 sh /bpfgate/triggers/$_seq.cleanup.sh < /dev/null > /dev/null 2>&1
	done < /bpfgate/triggers/list
	# The export is written asynchronously: wait until it stops growing.
	_last=-1
	for _i in $(seq 1 40); do
		_size=$(wc -c < /var/log/tetragon/tetragon.log 2>/dev/null || echo 0)
		[ "$_size" = "$_last" ] && break
		_last=$_size
		sleep 0.5
	done
	# Only events tied to a trigger leave the guest: every byte on the console is slow.
	emit tetragon-events "bytes=$_last" "$(grep -F -f /bpfgate/tetragon/markers /var/log/tetragon/tetragon.log)"
fi
emit agent-log "alive=$_alive" "$(tail -c 6000 /run/tetragon.out)"
kill $_agent 2>/dev/null
