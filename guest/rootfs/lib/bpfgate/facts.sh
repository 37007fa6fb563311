# Kernel facts every suite needs, measured in the guest (never assumed from the config).
# Page size from smaps: busybox has no getconf.
_bg_page=$(grep -m1 KernelPageSize /proc/self/smaps | tr -s ' ' | cut -d' ' -f2)
_bg_lsm=$(cat /sys/kernel/security/lsm 2>/dev/null)
_bg_btf=no; [ -e /sys/kernel/btf/vmlinux ] && _bg_btf=yes
_bg_jit=$(cat /proc/sys/net/core/bpf_jit_enable 2>/dev/null)
_bg_tracefs=no; [ -e /sys/kernel/tracing/available_events ] && _bg_tracefs=yes
emit facts "release=$(uname -r) machine=$(uname -m) page_kib=${_bg_page} nproc=$(nproc) btf=${_bg_btf} jit=${_bg_jit} tracefs=${_bg_tracefs}" \
"lsm=${_bg_lsm}
cmdline=$(cat /proc/cmdline)
bpftool=$(bpftool version 2>&1 | head -1)"
