/* Two programs of one type and different expected attach types sharing one tail-call map,
 * as Tetragon v1.5.0's multi-kprobe and multi-uprobe sensors do: the multi program first
 * (it owns the map), then a plain one that uses the map too, like Tetragon's tail calls.
 * Kernels with "bpf: Enforce expected_attach_type for tailcall compatibility" (6.12.53+,
 * 6.18) refuse to load the second. Where both load, the guest step puts tail_target in
 * calls[0] and its counter proves the jump ran. */
#ifndef BPFGATE_TAILCALL_H
#define BPFGATE_TAILCALL_H
#include "hits.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} calls SEC(".maps");

/* MULTI_SECTION attaches; PLAIN_SECTION names no target, so bpftool pins tail_target instead. */
#define MIXED_TAIL_CALLS(MULTI_SECTION, PLAIN_SECTION)        \
	SEC(MULTI_SECTION)                                    \
	int tail_multi(void *ctx)                             \
	{                                                     \
		bpf_tail_call(ctx, &calls, 0);                \
		return 0;                                     \
	}                                                     \
	SEC(PLAIN_SECTION)                                    \
	int tail_target(void *ctx)                            \
	{                                                     \
		bump();                                       \
		bpf_tail_call(ctx, &calls, 1);                \
		return 0;                                     \
	}
#endif
