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
		_e=$( { echo 'hist:keys=common_type' > "$_T/events/$_ev/trigger"; } 2>&1 ) || echo "$_n ${_e##*: }" >> /tmp/bg-reg
	fi
done < $_P/tracepoints
emit -i registered "" < /tmp/bg-reg

# Counter deltas since the previous read: "NAME DELTA" for each probe that moved
# (kprobe profile hits, hist totals for tracepoints), computed by one awk process.
_bg_hists=$(while read -r _n _ev; do [ -f "$_T/events/$_ev/hist" ] && printf '%s ' "$_T/events/$_ev/hist"; done < $_P/tracepoints)
: > /tmp/bg-prev
_bg_counters() {
	awk -v PREV=/tmp/bg-prev -v TPS=$_P/tracepoints -f $_P/counters.awk /tmp/bg-prev $_P/tracepoints $_T/kprobe_profile $_bg_hists
}

read -r _up _ < /proc/uptime
emit counters "phase=base up=$_up" "$(_bg_counters)"
# Read past that report: its console write belongs to no trigger (the first null run included).
_bg_counters > /dev/null
while read -r _seq _id _marker; do
	[ -n "$_seq" ] || continue
	export BPFGATE_MARKER="$_marker"
	_out=$(timeout 10 sh /bpfgate/triggers/$_seq.steps.sh < /dev/null 2>&1)
	_rc=$?
	read -r _up _ < /proc/uptime
	# The steps' output travels only when they failed: bytes on the console are slow.
	_tail=; [ $_rc -eq 0 ] || _tail=$(printf '%s' "$_out" | tail -c 600)
	# Counters first (the emits below are no trigger's), then the output as a part of the
	# trigger's counters record, which follows it.
	_counts=$(_bg_counters)
	[ $_rc -eq 0 ] || emit trigger-output "of=counters trigger=$_id rc=$_rc" "$_tail"
	emit counters "phase=after trigger=$_id rc=$_rc up=$_up" "$_counts"
	timeout 10 sh /bpfgate/triggers/$_seq.cleanup.sh < /dev/null > /dev/null 2>&1
	# Read past the cleanup without reporting it: its hits belong to no trigger.
	_bg_counters > /dev/null
done < /bpfgate/triggers/list

# Leave the kernel as found: later steps (an agent) must not run beside hundreds of probes.
echo 0 > $_T/events/bpfgate/enable 2>/dev/null
echo > $_T/kprobe_events 2>/dev/null
while read -r _n _ev; do
	[ -d "$_T/events/$_ev" ] && echo '!hist:keys=common_type' > "$_T/events/$_ev/trigger" 2>/dev/null
done < $_P/tracepoints
# Reached the end: the last test above may be false, and a non-zero status is a failed step.
exit 0
