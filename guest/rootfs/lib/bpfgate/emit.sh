# The guest half of bpfgate's console protocol: `emit [-i] TYPE HEADER [BODY]`.
# Sourced by /init and by the shell of every step (a command of the same name on PATH,
# bin/emit, serves any other process).
#
# A record is one line:  @@BPFGATE:<seq>:<type>:<md5 prefix>:<base64 payload>@@
# The payload is "<header line>\n<body>": the header is space-separated key=value
# tokens, the body free text (error output, JSON), from BODY or, with -i, from stdin.
# Sequence numbers let the host see a lost record; the checksum lets it reject (or
# repair) one that a kernel message cut in two.
#
# A record that only completes another (a counter dump, an output tail) is a part: it
# says which record with `of=<type>`, repeats that record's identifying keys, and is
# sent just before it; the host hands it to that record (runners/qemu/protocol.ts).
#
# Any process may emit at any time (init, a step, a step's background child): the
# sequence number lives in a file, and taking it and writing the frame happen under one
# lock, so two writers never share a number or interleave bytes of their frames. The
# lock is a symlink to its holder's pid (symlink(2) is atomic); a holder that died in
# it is found dead and the lock broken. Busybox has no flock, and perl costs a tenth of a
# second per record under TCG.

# Dead, or a zombie nobody reaped yet: either way it will never release a lock.
_bge_dead() {
	local _bge_st
	read -r _bge_st 2>/dev/null < "/proc/$1/stat" || return 0
	case $_bge_st in *") Z "*) return 0 ;; esac
	return 1
}

# _bge_lock RUN PID: wait for the lock, breaking it if its holder died holding it.
_bge_lock() {
	local _bge_holder
	until ln -sn "pid:$2" "$1/lock" 2>/dev/null; do
		_bge_holder=$(readlink "$1/lock" 2>/dev/null)
		# One breaker at a time (lock.break); under it the lock cannot change hands, so
		# if it still names the dead holder it is safe to remove.
		if [ -n "$_bge_holder" ] && _bge_dead "${_bge_holder#pid:}" && ln -sn "pid:$2" "$1/lock.break" 2>/dev/null; then
			[ "$(readlink "$1/lock" 2>/dev/null)" = "$_bge_holder" ] && rm -f "$1/lock"
			rm -f "$1/lock.break"
		fi
		usleep 2000
	done
}

emit() {
	local _bge_in= _bge_pid _bge_x _bge_run="${BPFGATE_RUN:-/run/bpfgate}" _bge_sum _bge_seq _bge_rc
	[ "$1" = -i ] && { _bge_in=1; shift; }
	# This process's own pid: $$ is the parent's in a subshell, and subshells emit too.
	read -r _bge_pid _bge_x < /proc/self/stat
	[ -d "$_bge_run" ] || mkdir -p "$_bge_run"
	local _bge_p="$_bge_run/p.$_bge_pid" _bge_h="$_bge_run/h.$_bge_pid"
	if [ -n "$_bge_in" ]; then
		{ printf '%s\n' "$2"; cat; } | base64 -w 0 > "$_bge_p"
	else
		printf '%s\n%s' "$2" "$3" | base64 -w 0 > "$_bge_p"
	fi
	_bge_sum=$(md5sum < "$_bge_p")
	printf '@@\n' >> "$_bge_p"
	_bge_lock "$_bge_run" "$_bge_pid"
	# Every failure below is caught (`|| ...`): under a step's `set -e` an uncaught one would
	# end the shell with the lock still held.
	_bge_seq=0
	read -r _bge_seq 2>/dev/null < "$_bge_run/seq" || :
	_bge_seq=$((_bge_seq + 1))
	echo "$_bge_seq" > "$_bge_run/seq"
	printf '\n@@BPFGATE:%d:%s:%.8s:' "$_bge_seq" "$1" "$_bge_sum" > "$_bge_h"
	# One process writes the whole frame: cat retries a console write that a signal (a
	# trigger's child exiting) cuts short, where the shell's printf would lose the rest.
	# Appended: the console is a file in the host's tests.
	_bge_rc=0
	cat "$_bge_h" "$_bge_p" >> "${BPFGATE_CONSOLE:-/dev/console}" || _bge_rc=$?
	rm -f "$_bge_run/lock" "$_bge_h" "$_bge_p"
	return $_bge_rc
}
