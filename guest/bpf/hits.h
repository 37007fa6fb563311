/* Shared by every probe object: one counter the host reads after the trigger.
 * An array map with a fixed name, so its pinned path is the same for every object
 * (/sys/fs/bpf/m_<object>/hits), whatever libbpf names the .bss map. */
#ifndef BPFGATE_HITS_H
#define BPFGATE_HITS_H
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void bump(void)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&hits, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* fentry, fmod_ret, lsm and override need a GPL-compatible licence. */
char LICENSE[] SEC("license") = "GPL";
#endif
