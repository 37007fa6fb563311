# Policies suite, guest side. Every hook of every policy is registered at once as a
# tracefs probe (kprobes, kretprobes; tracepoints counted by a hist trigger), then each
# trigger runs alone, and the probe counters are reported before and after it.
# tracing_on stays 0: probes still count their hits, and nothing fills the ring buffer.
_T=/sys/kernel/tracing
_P=/bpfgate/policies
echo 0 > $_T/tracing_on
ip link set lo up 2>/dev/null

: > /tmp/bg-reg
while read -r _n _t _s; do
	[ -n "$_n" ] || continue
	_e=$( { echo "$_t:bpfgate/$_n $_s" >> $_T/kprobe_events; } 2>&1 )
	[ $? -eq 0 ] || echo "$_n ${_e##*: }" >> /tmp/bg-reg
done < $_P/kprobes
echo 1 > $_T/events/bpfgate/enable 2>/dev/null

while read -r _n _ev; do
	[ -n "$_n" ] || continue
	if [ ! -d "$_T/events/$_ev" ]; then
		echo "$_n no such event" >> /tmp/bg-reg
	else
		_e=$( { echo 'hist:keys=common_pid' > "$_T/events/$_ev/trigger"; } 2>&1 ) || echo "$_n ${_e##*: }" >> /tmp/bg-reg
	fi
done < $_P/tracepoints
emit registered "" "$(cat /tmp/bg-reg)"

# "NAME HITS" per probe; tracepoints from their hist totals.
_bg_counters() {
	awk '{print $1, $2}' $_T/kprobe_profile
	while read -r _n _ev; do
		[ -f "$_T/events/$_ev/hist" ] && echo "$_n $(grep -m1 -o 'Hits: [0-9]*' "$_T/events/$_ev/hist" | cut -d' ' -f2)"
	done < $_P/tracepoints
}

BPFGATE_ARCH=$(uname -m); [ "$BPFGATE_ARCH" = aarch64 ] && BPFGATE_ARCH=arm64
export BPFGATE_ARCH
emit counters "phase=base" "$(_bg_counters)"
while read -r _seq _id _marker; do
	[ -n "$_seq" ] || continue
	export BPFGATE_MARKER="$_marker"
	_out=$(timeout 10 sh /bpfgate/triggers/$_seq.steps.sh < /dev/null 2>&1)
	_rc=$?
	emit counters "phase=after trigger=$_id rc=$_rc" "$(_bg_counters)
@@output@@
$(printf '%s' "$_out" | tail -c 600)"
	timeout 10 sh /bpfgate/triggers/$_seq.cleanup.sh < /dev/null > /dev/null 2>&1
	emit counters "phase=base" "$(_bg_counters)"
done < /bpfgate/triggers/list
