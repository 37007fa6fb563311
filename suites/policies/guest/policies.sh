# Policies suite, guest side. Every hook of every policy is registered at once as a
# tracefs probe (kprobes, kretprobes, uprobes and USDTs; tracepoints counted by a hist
# trigger; generated lists expanded here, one kprobe per function), then each trigger
# runs alone, and the probe counters are reported before and after it.
# tracing_on stays 0: probes still count their hits, and nothing fills the ring buffer.
# Registration is fork-free per probe (a redirected brace group, `read` of the error
# file): a fork costs milliseconds under TCG, and lists bring hundreds of probes.
_T=/sys/kernel/tracing
_P=/bpfgate/policies
# The image's uprobe index (runners/qemu/uprobe-index.ts): file offsets by path and symbol.
_IDX=/lib/bpfgate/uprobe-index
# At most this many functions of one generated list are registered (targets.ts GENERATED_LIST_CAP).
read -r _CAP < $_P/list-cap 2>/dev/null
echo 0 > $_T/tracing_on
ip link set lo up 2>/dev/null

# /tmp/bg-reg: NAME and the kernel's words, for each probe it refused.
# /tmp/bg-res: NAME WHAT ..., how a target was resolved here (a fallback symbol, a
# uprobe's file and offset, a missing binary, a list's expansion).
: > /tmp/bg-reg
: > /tmp/bg-res
_bg_now() { read -r _bg_t _ < /proc/uptime; }
# Guest uptime at the end of each phase, reported with the resolutions (where the time goes).
_bg_now; _bg_times="start=$_bg_t"

# Kprobes. A refused name with a fallback is tried again with it, as the agent's BPF
# library (cilium/ebpf link.Kprobe) does when the kernel says EINVAL or ENOENT.
while read -r _n _t _s _f; do
	[ -n "$_n" ] || continue
	{ echo "$_t:bpfgate/$_n $_s" >> $_T/kprobe_events; } 2> /tmp/bg-e && continue
	read -r _e < /tmp/bg-e
	_e=${_e##*: }
	case "$_e" in
	"Invalid argument" | "No such file or directory")
		if [ -n "$_f" ]; then
			if { echo "$_t:bpfgate/$_n $_f" >> $_T/kprobe_events; } 2> /tmp/bg-e; then
				echo "$_n symbol $_f $_s: $_e" >> /tmp/bg-res
				continue
			fi
			read -r _e2 < /tmp/bg-e
			_e="$_s: $_e; $_f: ${_e2##*: }"
		fi
		;;
	esac
	echo "$_n $_e" >> /tmp/bg-reg
done < $_P/kprobes
_bg_now; _bg_times="$_bg_times kprobes=$_bg_t"

# Uprobes and USDTs, at file offsets from the index. Tetragon's chart mounts the host's
# /proc at /procRoot: the agent's procfs, which is this guest's /proc.
if [ -s $_P/uprobes ]; then
	: > /tmp/bg-up
	while read -r _n _k _p _a _b; do
		[ -n "$_n" ] || continue
		case $_p in /procRoot/*) _q=/proc/${_p#/procRoot/} ;; *) _q=$_p ;; esac
		_r=$(readlink -f "$_q" 2>/dev/null)
		if [ -z "$_r" ] || [ ! -f "$_r" ]; then
			# Files of the same name elsewhere in this cell: where it keeps that binary.
			_alt=$(awk -v b="${_p##*/}" '{ n = $2; sub(/.*\//, "", n) } n == b && !seen[$2]++ { printf "%s ", $2 }' $_IDX)
			echo "$_n binary-missing $_p $_alt" >> /tmp/bg-res
			continue
		fi
		echo "$_n $_k $_r $_a $_b" >> /tmp/bg-up
	done < $_P/uprobes
	# NAME PATH OFFSET [SEMAPHORE], or NAME symbol-missing|probe-missing PATH.
	awk 'FILENAME == UP { want[++n] = $0; next }
		$1 == "f" { at["u " $2 " " $3] = $4; next }
		$1 == "n" { at["n " $2 " " $3 " " $4] = $5 " " $6; next }
		END {
			for (i = 1; i <= n; i++) {
				split(want[i], w, " ")
				if (w[2] == "u" && w[4] ~ /^\+/) { print w[1], w[3], substr(w[4], 2); continue }
				key = w[2] == "u" ? "u " w[3] " " w[4] : "n " w[3] " " w[4] " " w[5]
				if (key in at) print w[1], w[3], at[key]
				else print w[1], (w[2] == "u" ? "symbol-missing" : "probe-missing"), w[3]
			}
		}' UP=/tmp/bg-up /tmp/bg-up $_IDX > /tmp/bg-upat
	while read -r _n _r _o _s; do
		case $_r in symbol-missing | probe-missing) echo "$_n $_r $_o" >> /tmp/bg-res; continue ;; esac
		_at="$_r:$_o"
		[ -n "$_s" ] && [ "$_s" != 0x0 ] && _at="$_at($_s)"
		if { echo "p:bpfgate/$_n $_at" >> $_T/uprobe_events; } 2> /tmp/bg-e; then
			echo "$_n uprobe $_at" >> /tmp/bg-res
		else
			read -r _e < /tmp/bg-e
			echo "$_n $_at: ${_e##*: }" >> /tmp/bg-reg
		fi
	done < /tmp/bg-upat
	_bg_now; _bg_times="$_bg_times uprobes=$_bg_t"
fi

# Generated lists, expanded as the agent expands them on its node (Tetragon
# pkg/sensors/tracing/lists_linux.go): generated_syscalls is the arch's syscall table
# with the arch prefix, kept where the kernel has the function; generated_ftrace is
# available_filter_functions up to the first module line, unique, without
# __ftrace_invalid_address__, matching the pattern (a regular expression). More than
# _CAP functions are reported and not registered.
if [ -s $_P/lists ]; then
	# Unique in one pass (the agent sorts first; only the set matters here, and sort is slow under TCG).
	awk '/ / { exit } !/__ftrace_invalid_address__/ && !seen[$0]++' $_T/available_filter_functions > /tmp/bg-aff
	while read -r _n _t _type _pat; do
		[ -n "$_n" ] || continue
		_bg_now; _t0=$_bg_t
		if [ "$_type" = generated_syscalls ]; then
			awk 'FILENAME == S { want[$1] = 1; next } $1 in want' S=$_P/syscalls $_P/syscalls /tmp/bg-aff > /tmp/bg-list
		else
			: > /tmp/bg-e
			grep -E -e "$_pat" /tmp/bg-aff > /tmp/bg-list 2> /tmp/bg-e
		fi
		_cnt=$(wc -l < /tmp/bg-list)
		if [ "$_cnt" -eq 0 ]; then
			_e=; read -r _e < /tmp/bg-e 2>/dev/null
			echo "$_n $_type ${_pat:-}: nothing matches here ${_e:+($_e)}" >> /tmp/bg-reg
			continue
		fi
		if [ "$_cnt" -gt "$_CAP" ]; then
			echo "$_n list-too-large $_cnt $_CAP" >> /tmp/bg-res
			continue
		fi
		# Compiler clones (ksys_msgctl.constprop.0, .isra.N, .part.N, .cold): no BTF function has
		# a '.' in its name, and the agent looks every function of a list up in BTF before it
		# attaches (refused, or skipped under ignore.callNotFound). They are not registered.
		grep -F . /tmp/bg-list > /tmp/bg-clones
		grep -v -F . /tmp/bg-list > /tmp/bg-attach
		_clones=$(wc -l < /tmp/bg-clones)
		_i=0; _ok=0; _bad=; : > /tmp/bg-lerr
		while read -r _s; do
			if { echo "$_t:bpfgate/${_n}_$_i $_s" >> $_T/kprobe_events; } 2>> /tmp/bg-lerr; then
				_ok=$((_ok + 1))
			else
				_bad="$_bad $_s"
			fi
			_i=$((_i + 1))
		done < /tmp/bg-attach
		_bg_now
		echo "$_n list $_cnt $_ok $_t0 $_bg_t $_clones" >> /tmp/bg-res
		# The agent attaches every function of the list or fails the policy: a clone or one
		# refusal is the list's. The first of them, and the kernel's words for the refused.
		_why=
		[ "$_clones" -gt 0 ] && _why="$_clones of $_cnt functions are compiler clones BTF does not name ($(head -n 3 /tmp/bg-clones | tr '\n' ' ' | sed 's/ $//; s/ /,/g'))"
		if [ "$_ok" -lt $((_cnt - _clones)) ]; then
			_words=$(sed 's/.*: //' /tmp/bg-lerr | sort | uniq -c | head -n 3 | tr -s ' \n' '  ')
			_why="${_why:+$_why; }$((_cnt - _clones - _ok)) of $_cnt functions refused ($(echo $_bad | cut -d' ' -f1-5 | tr ' ' ',')): $_words"
		fi
		[ -z "$_why" ] || echo "$_n $_why" >> /tmp/bg-reg
	done < $_P/lists
	_bg_now; _bg_times="$_bg_times lists=$_bg_t"
fi
echo 1 > $_T/events/bpfgate/enable 2>/dev/null
_bg_now; _bg_times="$_bg_times enable=$_bg_t"

while read -r _n _ev; do
	[ -n "$_n" ] || continue
	if [ ! -d "$_T/events/$_ev" ]; then
		echo "$_n no such event" >> /tmp/bg-reg
	else
		{ echo 'hist:keys=common_type' > "$_T/events/$_ev/trigger"; } 2> /tmp/bg-e || { read -r _e < /tmp/bg-e; echo "$_n ${_e##*: }" >> /tmp/bg-reg; }
	fi
done < $_P/tracepoints

# The loader's hook runs for mmap events only: hold them open as Tetragon's loader
# sensor does (a software BPF-output perf event with mmap, mmap2, mmap_data and build_id
# on every possible CPU), from before the first counter read to the end of the triggers.
_bg_mmap=
if [ -f $_P/mmap-events.pl ]; then
	: > /tmp/bg-mmap
	perl $_P/mmap-events.pl "$BPFGATE_ARCH" /tmp/bg-mmap > /tmp/bg-mmap.out 2>&1 &
	_bg_mmap=$!
	_i=0
	while [ ! -s /tmp/bg-mmap ] && [ $_i -lt 100 ] && kill -0 $_bg_mmap 2>/dev/null; do sleep 0.1; _i=$((_i + 1)); done
	[ -s /tmp/bg-mmap ] || tail -c 200 /tmp/bg-mmap.out > /tmp/bg-mmap
	echo "mmap-events $(cat /tmp/bg-mmap)" >> /tmp/bg-res
fi
_bg_now; echo "timing $_bg_times ready=$_bg_t" >> /tmp/bg-res
emit -i registered "" < /tmp/bg-reg
emit -i resolved "" < /tmp/bg-res

# Counter deltas since the previous read: "NAME DELTA" for each probe that moved
# (kprobe and uprobe profile hits, hist totals for tracepoints; a list's functions
# summed under its name), computed by one awk process.
_bg_hists=$(while read -r _n _ev; do [ -f "$_T/events/$_ev/hist" ] && printf '%s ' "$_T/events/$_ev/hist"; done < $_P/tracepoints)
_bg_uprof=; [ -s $_P/uprobes ] && _bg_uprof=$_T/uprobe_profile
: > /tmp/bg-prev
_bg_counters() {
	awk -v PREV=/tmp/bg-prev -v TPS=$_P/tracepoints -f $_P/counters.awk /tmp/bg-prev $_P/tracepoints $_T/kprobe_profile $_bg_uprof $_bg_hists
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

[ -n "$_bg_mmap" ] && kill $_bg_mmap 2>/dev/null && wait $_bg_mmap 2>/dev/null
# Leave the kernel as found for a later step (an agent must not run beside hundreds of
# probes). Without one the guest powers off next: removing the probes (tens of ms each
# under TCG) would only cost time.
ls /bpfgate/steps | awk -v me="${0##*/}" '$0 > me' | grep -q . || exit 0
echo 0 > $_T/events/bpfgate/enable 2>/dev/null
echo > $_T/kprobe_events 2>/dev/null
[ -s $_P/uprobes ] && echo > $_T/uprobe_events 2>/dev/null
while read -r _n _ev; do
	[ -d "$_T/events/$_ev" ] && echo '!hist:keys=common_type' > "$_T/events/$_ev/trigger" 2>/dev/null
done < $_P/tracepoints
# Reached the end: the last test above may be false, and a non-zero status is a failed step.
exit 0
