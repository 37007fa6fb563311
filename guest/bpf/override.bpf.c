/* bpf_override_return from a kprobe: the verifier refuses the helper without
 * FUNCTION_ERROR_INJECTION. The call sits behind a condition the verifier cannot
 * decide (a map value), so it is always checked, and at run time it never fires. */
#include "hits.h"
struct pt_regs;
SEC("kprobe/security_file_open")
int override_sfo(struct pt_regs *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&hits, &key);
	if (!v)
		return 0;
	__sync_fetch_and_add(v, 1);
	if (*v == 0xfffffffffffffULL)
		bpf_override_return(ctx, 0);
	return 0;
}
