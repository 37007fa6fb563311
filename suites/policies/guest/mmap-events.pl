# Holds open what Tetragon's loader sensor opens so that the kernel produces mmap events
# (pkg/sensors/tracing/loader_linux.go, createLoaderEvents): a software PERF_COUNT_SW_BPF_OUTPUT
# event sampling raw data, with mmap, mmap_data, mmap2 and build_id, on every possible CPU.
# perf_event_mmap_output, the loader's hook, runs for each mapping while one is open.
# Arguments: the arch (x86_64, arm64) and a status file, which gets "opened N of M cpus"
# once every event is open, or the error; then it sleeps until killed. perl-base only.
my ($arch, $status) = @ARGV;
# Written and closed at once: the step reads it while this process sleeps.
sub report { my ($text) = @_; open(my $s, ">", $status) or return; print $s "$text\n"; close($s) }
my $nr = $arch eq "arm64" ? 241 : 298; # perf_event_open
my $flags = (1 << 8) | (1 << 17) | (1 << 23) | (1 << 34); # mmap, mmap_data, mmap2, build_id
# struct perf_event_attr: type (PERF_TYPE_SOFTWARE), size, config (PERF_COUNT_SW_BPF_OUTPUT),
# sample_period, sample_type (PERF_SAMPLE_RAW), read_format, the flag bits; zeros after.
my $attr = pack("LLQQQQQ", 1, 128, 10, 0, 1 << 10, 0, $flags) . ("\0" x 80);
my @cpus;
if (open(my $p, "<", "/sys/devices/system/cpu/possible")) {
    my $list = <$p>;
    chomp $list;
    for my $range (split /,/, $list) {
        my ($lo, $hi) = split /-/, $range;
        push @cpus, $lo .. (defined $hi ? $hi : $lo);
    }
}
die "no possible CPUs listed\n" unless @cpus;
my @fds;
for my $cpu (@cpus) {
    my $a = $attr;
    my $fd = syscall($nr, $a, -1, $cpu, -1, 8); # pid -1, this cpu, no group, FD_CLOEXEC
    if ($fd < 0) {
        my $err = "$!";
        report("error on cpu $cpu: $err");
        die "perf_event_open cpu $cpu: $err\n";
    }
    push @fds, $fd;
}
report("opened " . scalar(@fds) . " of " . scalar(@cpus) . " cpus");
sleep 3600 while 1;
