# Probe suite, guest side. Features are judged by attaching and counting hits,
# never by `bpftool feature probe` (it calls lsm and tracing available on arm64 6.1,
# where every attach fails with 524).

# Ring buffers of several sizes: a size below the page size is refused on 16K/64K kernels.
for _n in 4096 16384 65536; do
	_out=$(bpftool map create /sys/fs/bpf/rb$_n type ringbuf key 0 value 0 entries $_n name rb$_n 2>&1)
	emit ringbuf "size=$_n rc=$?" "$_out"
	rm -f /sys/fs/bpf/rb$_n
done

# Every probe object: load, attach, make security_file_open run, read the counter.
for _obj in /bpf/*.bpf.o; do
	_name=${_obj##*/}; _name=${_name%.bpf.o}
	_out=$(bpftool prog loadall "$_obj" /sys/fs/bpf/p_$_name pinmaps /sys/fs/bpf/m_$_name autoattach 2>&1)
	_rc=$?
	if [ $_rc -eq 0 ]; then
		# The tail-call probes: their multi program jumps to tail_target, whose counter is the evidence.
		case $_name in *tailcall) bpftool map update pinned /sys/fs/bpf/m_$_name/calls key 0 0 0 0 value pinned /sys/fs/bpf/p_$_name/tail_target >> /tmp/bg-tail 2>&1 ;; esac
		# Each cat opens a file (security_file_open) and runs openat (the tracepoint); busybox is
		# static, so the uprobes on libc's malloc need a dynamic program: perl.
		for _i in 1 2 3; do cat /proc/version > /dev/null; done
		case $_name in u*) perl -e 1 ;; esac
		# The counter, as a part of the attach record that follows it.
		emit attach-hits "of=attach prog=$_name" "$(bpftool -j map dump pinned /sys/fs/bpf/m_$_name/hits 2>&1)"
	fi
	emit attach "prog=$_name rc=$_rc" "$_out"
	rm -rf /sys/fs/bpf/p_$_name /sys/fs/bpf/m_$_name
done

# What the feature probe claims, recorded beside what attaching showed.
if [ -n "$BPFGATE_FEATURE_PROBE" ]; then
	emit feature-probe "" "$(bpftool feature probe kernel 2>&1 | grep -E 'program_type (lsm|tracing|kprobe)|bpf_override_return')"
fi
