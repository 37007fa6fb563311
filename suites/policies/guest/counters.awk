# Counter deltas since the previous read, in one process (forks are what costs under TCG,
# and every byte on the emulated serial console is slow: only changed counters leave).
# Inputs, in order: the previous state (PREV, may be empty), the tracepoint target list
# ("b3 syscalls/sys_enter_openat"), the kprobe profile, then the hist files.
# Prints "NAME DELTA" for every counter that moved, and saves the new state to PREV
# (all input is read by END, so PREV can be rewritten in place: no mv, one exec less).
FILENAME == PREV { prev[$1] = $2; next }
FILENAME == TPS { target[$2] = $1; next }
FILENAME ~ /kprobe_profile$/ { cur[$1] = $2; next }
/Hits:/ {
	ev = FILENAME
	sub(/.*\/events\//, "", ev)
	sub(/\/hist$/, "", ev)
	if (ev in target) cur[target[ev]] = $2
	next
}
END {
	for (name in cur) {
		if (cur[name] != prev[name]) print name, cur[name] - prev[name]
		print name, cur[name] > PREV
	}
}
