# Counter deltas since the previous read, in one process (forks are what costs under TCG,
# and every byte on the emulated serial console is slow: only changed counters leave).
# Inputs, in order: the previous state (PREV, may be empty), the tracepoint target list
# ("b3 syscalls/sys_enter_openat"), the kprobe profile, the uprobe profile (when there are
# uprobes), then the hist files.
# Prints "NAME DELTA" for every counter that moved, and saves the new state to PREV
# (all input is read by END, so PREV can be rewritten in place: no mv, one exec less).
# The functions of a generated list (b7_0, b7_1, ...) count together, as their list b7.
FILENAME == PREV { prev[$1] = $2; next }
FILENAME == TPS { target[$2] = $1; next }
FILENAME ~ /kprobe_profile$/ { name = $1; sub(/_[0-9]+$/, "", name); cur[name] += $2; next }
# uprobe_profile: "PATH EVENT HITS".
FILENAME ~ /uprobe_profile$/ { cur[$2] += $3; next }
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
