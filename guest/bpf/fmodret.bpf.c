/* fmod_ret: the trampoline-based way to override a return value; allowed on security_* hooks
 * even where error injection (bpf_override_return) is compiled out. Returns 0: no change. */
#include "hits.h"
SEC("fmod_ret/security_file_open")
int fmodret_sfo(void *ctx) { bump(); return 0; }
