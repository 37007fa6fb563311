# The export lines that belong to a trigger, in the guest, before they cross the slow
# console: `awk -v pids=FILE -v markers=FILE -f tied-events.awk EXPORT EXPORT` (the export
# twice: the first pass learns the process tree, the second prints).
#
# A line is a trigger's when its process descends from the process a trigger's steps ran
# as (pids: "PID MARKER" lines, one per trigger), or when it carries a marker anywhere in
# its text. The tree is what ties a helper whose argv names no marker (t1105's `nc`);
# the marker text ties an event whose process is not the trigger's (a kernel thread
# acting on a marker file). suites/tetragon/match.ts ties the events on the host by the
# same rules.
#
# Protojson prints a Process with `exec_id` first and an event with `process` before
# `parent`: the first "exec_id" of a line is the process's, and the one right after
# "parent":{ its parent's. Quotes inside strings are escaped, so a key pattern never
# matches inside a value. Protojson may put a space after a colon or a comma (it varies
# by build, on purpose): every pattern allows one.

function text(key, from,   s) {
	if (!match(from, "\"" key "\": ?\"")) return ""
	s = substr(from, RSTART + RLENGTH)
	return substr(s, 1, index(s, "\"") - 1)
}

function pidOf(from,   s) {
	if (!match(from, /"pid": ?[0-9]+/)) return ""
	s = substr(from, RSTART, RLENGTH)
	sub(/^"pid": ?/, "", s)
	return s
}

function parentOf() {
	return match($0, /"parent": ?\{/) ? text("exec_id", substr($0, RSTART)) : text("parent_exec_id", $0)
}

# Is exec id e a trigger's root or a descendant of one? Remembered per exec id.
function tied(e,   chain, n, k, r) {
	n = 0
	r = 0
	while (e != "" && n < 64) {
		if (e in known) { r = known[e]; break }
		if (e in root) { r = 1; break }
		chain[++n] = e
		if (!(e in up)) break
		e = up[e]
	}
	for (k = 1; k <= n; k++) known[chain[k]] = r
	return r
}

BEGIN {
	while ((getline line < pids) > 0) {
		split(line, f, " ")
		if (f[1] != "") rootPid[f[1]] = 1
	}
	while ((getline line < markers) > 0) if (line != "") marker[++markerCount] = line
}

# First pass: the process tree, and the roots (a trigger's steps process, as the event's
# process or as its parent).
NR == FNR {
	e = text("exec_id", $0)
	if (e == "") next
	p = parentOf()
	if (p != "" && p != e) up[e] = p
	if (pidOf($0) in rootPid) root[e] = 1
	if (p != "" && match($0, /"parent": ?\{/) && (pidOf(substr($0, RSTART)) in rootPid)) root[p] = 1
	next
}

# Second pass: print what is tied.
{
	e = text("exec_id", $0)
	if (e != "" && (tied(e) || tied(parentOf()))) { print; next }
	for (i = 1; i <= markerCount; i++) if (index($0, marker[i])) { print; next }
}
