# The guest half of bpfgate's console protocol.
# A record is one line:  @@BPFGATE:<seq>:<type>:<md5 prefix>:<base64 payload>@@
# The payload is "<header line>\n<body>": the header is space-separated key=value
# tokens, the body free text (error output, JSON). Sequence numbers let the host see
# a lost record; the checksum lets it reject (or repair) one that a kernel message
# cut in two.
BPFGATE_SEQ=0
emit() {
	BPFGATE_SEQ=$((BPFGATE_SEQ + 1))
	_bg_p=$(printf '%s\n%s' "$2" "$3" | base64 -w 0)
	_bg_s=$(printf '%s' "$_bg_p" | md5sum)
	# Staged in a file and copied by cat: cat retries a console write that a signal
	# (a trigger's child exiting) interrupts, where a shell's printf would lose the rest.
	printf '\n@@BPFGATE:%d:%s:%.8s:%s@@\n' "$BPFGATE_SEQ" "$1" "$_bg_s" "$_bg_p" > /run/.bg-frame
	cat /run/.bg-frame
}
